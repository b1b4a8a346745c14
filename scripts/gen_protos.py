"""Generate pyegress's psrpc/rpc protobuf modules (run by scripts/setup; needs grpcio-tools).

livekit-protocol on PyPI ships no `rpc` package and no psrpc envelope, so the
few messages a worker needs are kept as .proto files in proto/ and compiled
here into src/pyegress/psrpc/pb/. The livekit.* types they use are not
recompiled: protoc reads them from the descriptors the livekit-protocol wheel
registers, and the generated import is pointed at `livekit.protocol.egress`,
so there is exactly one definition of each livekit message in the process.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import grpc_tools
from google.protobuf import descriptor_pb2
from grpc_tools import protoc
from livekit.protocol import egress

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src/pyegress/psrpc/pb"
PROTOS = ["psrpc_internal.proto", "rpc_egress.proto"]


def descriptor_set(*roots) -> descriptor_pb2.FileDescriptorSet:
    """The roots' file descriptors and all they import, dependencies first (protoc's order)."""
    out, seen = descriptor_pb2.FileDescriptorSet(), set()

    def add(fd) -> None:
        if fd.name in seen:
            return
        seen.add(fd.name)
        for dep in fd.dependencies:
            add(dep)
        fd.CopyToProto(out.file.add())

    for root in roots:
        add(root)
    return out


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        deps = Path(tmp) / "livekit.pb"
        deps.write_bytes(descriptor_set(egress.DESCRIPTOR).SerializeToString())
        well_known = Path(grpc_tools.__file__).parent / "_proto"
        code = protoc.main(["protoc", f"--descriptor_set_in={deps}", f"-I{ROOT / 'proto'}", f"-I{well_known}",
                            f"--python_out={OUT}", f"--pyi_out={OUT}", *PROTOS])
    if code:
        return code
    for path in OUT.glob("*_pb2.py*"):
        text = path.read_text()
        text = re.sub(r"^import livekit_egress_pb2 as (\w+)$", r"from livekit.protocol import egress as \1", text,
                      flags=re.M)
        text = text.replace("import livekit_egress_pb2 as", "from livekit.protocol import egress as")
        path.write_text(text)
    print("generated:", ", ".join(sorted(p.name for p in OUT.glob("*_pb2.py"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
