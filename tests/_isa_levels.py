"""The kernel levels the tests sweep: refquant._levels (the ISA levels, with the AVX2 level split
in two by the AVX-VNNI feature), shared with tools/fuzz_kernels.py."""
from refquant._levels import LEVELS, available, use  # noqa: F401
