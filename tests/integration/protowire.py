"""A small protobuf wire codec driven by the project's own .proto files.

It reads proto/allot/v1/*.proto (messages, enums, services; the subset of the
language those files use), encodes a proto3 JSON-shaped dict into the binary
wire format the way protobuf-c packs it (fields in number order, proto3
defaults left out, negative int32 as ten-byte varints) and decodes wire bytes
back into the proto3 JSON shape with every field present. Nothing here knows
Allot's messages by hand: the .proto files are the contract.

A oneof member is written when the dict has it, even at its default, and is
present in a decoded dict only when it was on the wire (proto3 JSON's rule for
fields with presence). Left to others: gRPC framing, maps, packed encoding on
output (the files have no repeated scalars but strings), groups.
"""

import base64
import math
import os
import re
import struct

SCALARS = {
    "string", "bytes", "bool", "int32", "int64", "uint32", "uint64",
    "sint32", "sint64", "double", "float", "fixed32", "fixed64",
    "sfixed32", "sfixed64",
}
INT64_KINDS = {"int64", "uint64", "sint64", "fixed64", "sfixed64"}


def camel(name):
    """proto3 JSON name of a field: lowerCamelCase of its snake_case name."""
    parts = name.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


class Field:
    def __init__(self, name, number, ftype, repeated, oneof=None):
        self.name = name
        self.oneof = oneof
        self.json = camel(name)
        self.number = number
        self.type = ftype
        self.repeated = repeated


class Schema:
    """Messages, enums and RPCs of a set of .proto files (one package)."""

    def __init__(self, proto_dir):
        self.messages = {}   # name -> [Field] in number order
        self.enums = {}      # name -> {name: number}
        self.rpcs = {}       # "Service/Method" -> (request type, response type)
        self.package = None
        for fn in sorted(os.listdir(proto_dir)):
            if fn.endswith(".proto"):
                with open(os.path.join(proto_dir, fn), encoding="utf-8") as f:
                    self._parse(f.read(), fn)

    def _parse(self, text, fn):
        text = re.sub(r"//[^\n]*", "", text)
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        toks = re.findall(r'"[^"]*"|[A-Za-z_][\w.]*|-?\d+|[{}=;()\[\],<>]', text)
        pos = 0

        def take(expect=None):
            nonlocal pos
            if pos >= len(toks):
                raise ValueError(f"{fn}: unexpected end of file")
            t = toks[pos]
            pos += 1
            if expect is not None and t != expect:
                raise ValueError(f"{fn}: expected {expect!r}, found {t!r}")
            return t

        def skip_statement():
            while take() != ";":
                pass

        while pos < len(toks):
            t = take()
            if t in ("syntax", "import", "option"):
                skip_statement()
            elif t == "package":
                self.package = take()
                take(";")
            elif t == "message":
                name = take()
                take("{")
                fields = []
                oneof = None
                while toks[pos] != "}" or oneof is not None:
                    repeated = False
                    ft = take()
                    if ft == "option":
                        skip_statement()
                        continue
                    if ft == "oneof":
                        oneof = take()
                        take("{")
                        continue
                    if ft == "}":
                        oneof = None
                        continue
                    if ft == "repeated":
                        repeated = True
                        ft = take()
                    fname = take()
                    take("=")
                    num = int(take())
                    take(";")
                    fields.append(Field(fname, num, ft.split(".")[-1], repeated, oneof))
                take("}")
                fields.sort(key=lambda fl: fl.number)
                self.messages[name] = fields
            elif t == "enum":
                name = take()
                take("{")
                values = {}
                while toks[pos] != "}":
                    vname = take()
                    take("=")
                    values[vname] = int(take())
                    take(";")
                take("}")
                self.enums[name] = values
            elif t == "service":
                svc = take()
                take("{")
                while toks[pos] != "}":
                    take("rpc")
                    method = take()
                    take("(")
                    req = take().split(".")[-1]
                    take(")")
                    take("returns")
                    take("(")
                    resp = take().split(".")[-1]
                    take(")")
                    if toks[pos] == "{":
                        while take() != "}":
                            pass
                    else:
                        take(";")
                    self.rpcs[f"{svc}/{method}"] = (req, resp)
                take("}")
            elif t == ";":
                continue
            else:
                raise ValueError(f"{fn}: unexpected {t!r}")

    # ---- encoding ----------------------------------------------------------

    def encode(self, msg, obj):
        """Returns the wire bytes of message type msg built from obj, a dict
        keyed by lowerCamelCase (or snake_case) field names in proto3 JSON
        form (int64 as int or str, enums by name or number)."""
        if msg not in self.messages:
            raise KeyError(f"unknown message {msg}")
        obj = obj or {}
        known = {f.json for f in self.messages[msg]} | {f.name for f in self.messages[msg]}
        extra = set(obj) - known
        if extra:
            raise KeyError(f"{msg} has no field(s) {sorted(extra)}")
        out = bytearray()
        for f in self.messages[msg]:
            v = obj.get(f.json, obj.get(f.name))
            if v is None:
                continue
            values = v if f.repeated else [v]
            for item in values:
                self._encode_field(out, f, item, f.repeated or f.oneof is not None)
        return bytes(out)

    def _encode_field(self, out, f, v, always):
        t = f.type
        if t in self.messages:
            body = self.encode(t, v)
            out += _key(f.number, 2) + _varint(len(body)) + body
            return
        if t in self.enums:
            n = self.enums[t][v] if isinstance(v, str) else int(v)
            if n or always:
                out += _key(f.number, 0) + _varint(n & 0xFFFFFFFFFFFFFFFF)
            return
        if t in ("string", "bytes"):
            b = v.encode() if isinstance(v, str) else bytes(v)
            if b or always:
                out += _key(f.number, 2) + _varint(len(b)) + b
            return
        if t == "bool":
            if v or always:
                out += _key(f.number, 0) + _varint(1 if v else 0)
            return
        if t in ("double", "float"):
            x = float(v)
            if x != 0.0 or math.copysign(1.0, x) < 0 or always:
                if t == "double":
                    out += _key(f.number, 1) + struct.pack("<d", x)
                else:
                    out += _key(f.number, 5) + struct.pack("<f", x)
            return
        n = int(v)
        if not n and not always:
            return
        if t in ("sint32", "sint64"):
            out += _key(f.number, 0) + _varint((n << 1) ^ (n >> 63))
        elif t in ("fixed32", "sfixed32"):
            out += _key(f.number, 5) + struct.pack("<I", n & 0xFFFFFFFF)
        elif t in ("fixed64", "sfixed64"):
            out += _key(f.number, 1) + struct.pack("<Q", n & 0xFFFFFFFFFFFFFFFF)
        else:
            # int32 and int64 negatives are sign-extended to ten bytes.
            out += _key(f.number, 0) + _varint(n & 0xFFFFFFFFFFFFFFFF)

    # ---- decoding ----------------------------------------------------------

    def default(self, f):
        if f.repeated:
            return []
        t = f.type
        if t in self.messages:
            return None
        if t in self.enums:
            return _enum_name(self.enums[t], 0)
        if t == "string":
            return ""
        if t == "bytes":
            return ""
        if t == "bool":
            return False
        if t in ("double", "float"):
            return 0.0
        if t in INT64_KINDS:
            return "0"
        return 0

    def decode(self, msg, data):
        """Returns the proto3 JSON form (dict, every field present) of the
        wire bytes data of message type msg. Raises ValueError on bad bytes."""
        fields = {f.number: f for f in self.messages[msg]}
        out = {f.json: self.default(f) for f in self.messages[msg] if f.oneof is None}
        pos = 0
        data = bytes(data)
        while pos < len(data):
            key, pos = _read_varint(data, pos)
            num, wt = key >> 3, key & 7
            if num == 0:
                raise ValueError("field number 0")
            if wt == 0:
                raw, pos = _read_varint(data, pos)
            elif wt == 1:
                if pos + 8 > len(data):
                    raise ValueError("truncated 64-bit field")
                raw, pos = data[pos:pos + 8], pos + 8
            elif wt == 2:
                ln, pos = _read_varint(data, pos)
                if pos + ln > len(data):
                    raise ValueError("truncated length-delimited field")
                raw, pos = data[pos:pos + ln], pos + ln
            elif wt == 5:
                if pos + 4 > len(data):
                    raise ValueError("truncated 32-bit field")
                raw, pos = data[pos:pos + 4], pos + 4
            else:
                raise ValueError(f"unsupported wire type {wt}")
            f = fields.get(num)
            if f is None:
                continue
            if f.repeated and wt == 2 and f.type not in self.messages and \
                    f.type not in ("string", "bytes"):
                vals = []
                p = 0
                while p < len(raw):
                    if f.type in ("double", "fixed64", "sfixed64"):
                        vals.append(self._scalar(f, 1, raw[p:p + 8]))
                        p += 8
                    elif f.type in ("float", "fixed32", "sfixed32"):
                        vals.append(self._scalar(f, 5, raw[p:p + 4]))
                        p += 4
                    else:
                        r, p = _read_varint(raw, p)
                        vals.append(self._scalar(f, 0, r))
                out[f.json].extend(vals)
                continue
            v = self._scalar(f, wt, raw)
            if f.repeated:
                out[f.json].append(v)
            else:
                out[f.json] = v
        return out

    def _scalar(self, f, wt, raw):
        t = f.type
        if t in self.messages:
            return self.decode(t, raw)
        if t in self.enums:
            return _enum_name(self.enums[t], _signed(raw, 32))
        if t == "string":
            return raw.decode("utf-8")
        if t == "bytes":
            return base64.b64encode(raw).decode()
        if t == "bool":
            return raw != 0
        if t == "double":
            return struct.unpack("<d", raw)[0]
        if t == "float":
            return struct.unpack("<f", raw)[0]
        if t in ("fixed32",):
            return struct.unpack("<I", raw)[0]
        if t in ("sfixed32",):
            return struct.unpack("<i", raw)[0]
        if t == "fixed64":
            return str(struct.unpack("<Q", raw)[0])
        if t == "sfixed64":
            return str(struct.unpack("<q", raw)[0])
        if t in ("sint32", "sint64"):
            n = (raw >> 1) ^ -(raw & 1)
            return str(n) if t == "sint64" else n
        if t == "uint64":
            return str(raw)
        if t == "uint32":
            return raw & 0xFFFFFFFF
        if t == "int64":
            return str(_signed(raw, 64))
        return _signed(raw, 32)

    # ---- proto3 JSON helpers ----------------------------------------------

    def normalize(self, msg, obj):
        """Returns obj (proto3 JSON of message msg, as a server wrote it) in one
        canonical shape: missing fields filled with defaults, 64-bit integers
        as int, enums by name, doubles as float, so that the JSON and the
        protobuf answer of one call can be compared."""
        if obj is None:
            return None
        out = {}
        for f in self.messages[msg]:
            v = obj.get(f.json, obj.get(f.name))
            if v is None and f.oneof is not None:
                continue
            if v is None:
                v = self.default(f)
            if f.repeated:
                out[f.json] = [self._norm_value(f, x) for x in v]
            else:
                out[f.json] = self._norm_value(f, v)
        return out

    def _norm_value(self, f, v):
        t = f.type
        if v is None:
            return None
        if t in self.messages:
            return self.normalize(t, v)
        if t in self.enums:
            return _enum_name(self.enums[t], v) if isinstance(v, int) else v
        if t in ("double", "float"):
            return float(v)
        if t in SCALARS and t not in ("string", "bytes", "bool"):
            return int(v)
        return v

    def missing_fields(self, msg, obj, path=""):
        """Returns a list of problems with obj as a proto3 JSON answer that
        writes every field: fields absent, 64-bit integers not strings."""
        problems = []
        if not isinstance(obj, dict):
            return [f"{path or msg}: not an object"]
        for f in self.messages[msg]:
            p = f"{path}.{f.json}" if path else f.json
            if f.json not in obj and f.oneof is not None:
                continue
            if f.json not in obj:
                problems.append(f"{p}: missing")
                continue
            v = obj[f.json]
            items = v if f.repeated else [v]
            if f.repeated and not isinstance(v, list):
                problems.append(f"{p}: not a list")
                continue
            for i, x in enumerate(items):
                q = f"{p}[{i}]" if f.repeated else p
                if f.type in self.messages:
                    if x is not None:
                        problems += self.missing_fields(f.type, x, q)
                elif f.type in INT64_KINDS and not isinstance(x, str):
                    problems.append(f"{q}: 64-bit integer written as {type(x).__name__}, "
                                    "not a string")
        return problems


def values_equal(a, b, rel=1e-12):
    """Deep equality with a relative tolerance on floats."""
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            return False
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(values_equal(x, y, rel) for x, y in zip(a, b))
    return a == b


def _enum_name(values, n):
    for k, v in values.items():
        if v == n:
            return k
    return n


def _signed(n, bits):
    n &= (1 << 64) - 1
    if n >= 1 << 63:
        n -= 1 << 64
    if bits == 32:
        n = ((n + (1 << 31)) % (1 << 32)) - (1 << 31)
    return n


def _key(number, wire_type):
    return _varint((number << 3) | wire_type)


def _varint(n):
    if n < 0:
        raise ValueError("varint of a negative number")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(data, pos):
    shift = 0
    n = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        if shift >= 70:
            raise ValueError("varint too long")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, pos
        shift += 7
