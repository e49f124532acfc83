/*
 * arena: bump allocation for what lives exactly as long as one call.
 *
 * A Twirp call's decoded request (hundreds of small pieces: messages, strings,
 * arrays) and the messages of its answer are allocated here and released all at
 * once when the call ends, by arena_cleanup, instead of a malloc and a free each.
 * The first block may be the caller's storage; further blocks are malloc'd, each
 * at least twice the last. Every allocation is aligned for any type.
 *
 * Under AddressSanitizer each allocation is a malloc of its own, linked into the
 * arena, so that overflows and uses after the call are still caught per object and
 * a leaked arena is still a leak.
 *
 * arena_protobuf gives a ProtobufCAllocator over the arena, for protobuf-c's unpack
 * and pbjson_decode: its free does nothing (arena_cleanup frees). Not thread-safe.
 */
#ifndef ALLOT_ARENA_H
#define ALLOT_ARENA_H

#include <stdalign.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

struct arena_block;

struct arena {
	ProtobufCAllocator pb;      /* allocator_data is the arena */
	char *ptr, *end;            /* the current block's free space */
	struct arena_block *blocks; /* malloc'd blocks, newest first */
	size_t next_size;           /* the size of the next block */
};

/* Prepares a; first[0..len) (may be NULL, 0) is used before any block is malloc'd. */
void arena_init(struct arena *a, void *first, size_t len);
/* n bytes (n may be 0), aligned to max_align_t, or NULL when memory is exhausted. */
void *arena_alloc(struct arena *a, size_t n) __attribute__((malloc));
/* n zeroed elements of size bytes, or NULL (also when n * size overflows). */
void *arena_calloc(struct arena *a, size_t n, size_t size) __attribute__((malloc));
/* A copy of s in the arena, or NULL. */
char *arena_strdup(struct arena *a, const char *s);
/* Frees everything allocated from a; a may be used again after arena_init. */
void arena_cleanup(struct arena *a);

static inline ProtobufCAllocator *
arena_protobuf(struct arena *a)
{
	return &a->pb;
}

#endif
