/* arena: see arena.h. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

#if defined(__SANITIZE_ADDRESS__)
#define ARENA_EACH_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_EACH_MALLOC 1
#endif
#endif

#define ARENA_ALIGN alignof(max_align_t)
#define ARENA_MIN_BLOCK 16384u
#define ARENA_MAX_BLOCK (1u << 20) /* doubling stops here; larger requests get their own */

struct arena_block {
	struct arena_block *next;
	alignas(max_align_t) char data[];
};

static void *
pb_alloc(void *data, size_t n)
{
	return arena_alloc(data, n);
}

static void
pb_free(void *data, void *p)
{
	(void)data;
	(void)p; /* freed with the arena */
}

void
arena_init(struct arena *a, void *first, size_t len)
{
	uintptr_t start = (uintptr_t)first, aligned;

	a->pb.alloc = pb_alloc;
	a->pb.free = pb_free;
	a->pb.allocator_data = a;
	a->blocks = NULL;
	a->next_size = ARENA_MIN_BLOCK;
	a->ptr = a->end = NULL;
	if (first != NULL) {
		aligned = (start + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1);
		if (aligned - start < len) {
			a->ptr = (char *)aligned;
			a->end = (char *)first + len;
		}
	}
}

/* A new block holding at least n bytes; NULL when malloc fails. */
static struct arena_block *
block_new(struct arena *a, size_t n)
{
	size_t size = a->next_size;
	struct arena_block *b;

	if (n > SIZE_MAX - sizeof(*b))
		return NULL;
	if (size < n)
		size = n;
	if ((b = malloc(sizeof(*b) + size)) == NULL)
		return NULL;
	b->next = a->blocks;
	a->blocks = b;
	if (a->next_size < ARENA_MAX_BLOCK)
		a->next_size *= 2;
	a->ptr = b->data;
	a->end = b->data + size;
	return b;
}

void *
arena_alloc(struct arena *a, size_t n)
{
	char *p;

	if (n > SIZE_MAX - ARENA_ALIGN)
		return NULL;
	n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (n == 0)
		n = ARENA_ALIGN;
#ifdef ARENA_EACH_MALLOC
	{
		struct arena_block *b = malloc(sizeof(*b) + n);

		if (b == NULL)
			return NULL;
		b->next = a->blocks;
		a->blocks = b;
		return b->data;
	}
#endif
	if ((size_t)(a->end - a->ptr) < n && block_new(a, n) == NULL)
		return NULL;
	p = a->ptr;
	a->ptr += n;
	return p;
}

void *
arena_calloc(struct arena *a, size_t n, size_t size)
{
	void *p;

	if (size != 0 && n > SIZE_MAX / size)
		return NULL;
	if ((p = arena_alloc(a, n * size)) != NULL)
		memset(p, 0, n * size);
	return p;
}

char *
arena_strdup(struct arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = arena_alloc(a, n);

	if (p != NULL)
		memcpy(p, s, n);
	return p;
}

void
arena_cleanup(struct arena *a)
{
	struct arena_block *b = a->blocks, *next;

	for (; b != NULL; b = next) {
		next = b->next;
		free(b);
	}
	a->blocks = NULL;
	a->ptr = a->end = NULL;
}
