#!/usr/bin/env python3
"""Convert a PyTorch zip checkpoint (.pth, a flat state dict) to .safetensors, without torch.

Tessera's runtime reads safetensors only; this turns e.g. madebyollin's taesd_*.pth /
taef2_*.pth into files it can load:
    python3 tools/pth_to_safetensors.py IN.pth OUT.safetensors [--prefix encoder.]

A .pth is a ZIP archive: PREFIX/data.pkl (a pickle of an OrderedDict of tensors whose
storages are persistent ids) and PREFIX/data/KEY (raw little-endian storage bytes).
The pickle is read with a restricted Unpickler that knows only the globals a state dict
needs, so no code from the file ever runs. Only contiguous tensors are accepted.
Uses the standard library only (zipfile, pickle, json, struct).
"""
import collections
import json
import pickle
import struct
import sys
import zipfile

# torch storage class name -> (safetensors dtype, bytes per element)
STORAGES = {
    "HalfStorage": ("F16", 2), "FloatStorage": ("F32", 4), "BFloat16Storage": ("BF16", 2),
    "DoubleStorage": ("F64", 8), "LongStorage": ("I64", 8), "IntStorage": ("I32", 4),
    "ShortStorage": ("I16", 2), "CharStorage": ("I8", 1), "ByteStorage": ("U8", 1), "BoolStorage": ("BOOL", 1),
}


class StorageType:
    def __init__(self, name):
        self.name = name


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


def rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, *rest):
    return Tensor(storage, offset, size, stride)


class StateDictUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return rebuild_tensor_v2
        if module == "torch" and name in STORAGES:
            return StorageType(name)
        raise pickle.UnpicklingError(f"refusing global {module}.{name}")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel)
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return (pid[1].name, str(pid[2]), int(pid[4]))


def read_pth(path):
    zf = zipfile.ZipFile(path)
    pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl) != 1:
        raise SystemExit(f"{path}: not a PyTorch zip checkpoint (no single data.pkl)")
    root = pkl[0][: -len("data.pkl")]
    with zf.open(pkl[0]) as f:
        state = StateDictUnpickler(f).load()
    if not isinstance(state, dict):
        raise SystemExit(f"{path}: the pickle is not a state dict")
    tensors = {}
    for name, t in state.items():
        if not isinstance(t, Tensor):
            raise SystemExit(f"{path}: entry {name!r} is not a tensor")
        kind, key, numel = t.storage
        dtype, esize = STORAGES[kind]
        expect, step = [], 1
        for d in reversed(t.size):
            expect.insert(0, step)
            step *= d
        if t.size and tuple(expect) != t.stride:
            raise SystemExit(f"{path}: tensor {name!r} is not contiguous (stride {t.stride})")
        count = 1
        for d in t.size:
            count *= d
        if t.offset + count > numel:
            raise SystemExit(f"{path}: tensor {name!r} runs past its storage")
        raw = zf.read(f"{root}data/{key}")
        if len(raw) != numel * esize:
            raise SystemExit(f"{path}: storage {key} has {len(raw)} bytes, expected {numel * esize}")
        tensors[name] = (dtype, list(t.size), raw[t.offset * esize:(t.offset + count) * esize])
    return tensors


def write_safetensors(path, tensors, metadata=None):
    header, offset, blobs = {}, 0, []
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    import os
    os.replace(tmp, path)


def main():
    args = sys.argv[1:]
    prefix = ""
    if "--prefix" in args:
        i = args.index("--prefix")
        prefix = args[i + 1]
        del args[i:i + 2]
    if len(args) != 2:
        raise SystemExit(__doc__)
    tensors = read_pth(args[0])
    write_safetensors(args[1], {prefix + k: v for k, v in tensors.items()}, {"source": args[0].rsplit("/", 1)[-1]})
    print(f"{args[1]}: {len(tensors)} tensors", file=sys.stderr)


if __name__ == "__main__":
    main()
