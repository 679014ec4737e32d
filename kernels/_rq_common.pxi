# Include this at the top of every kernels/_<family>.pyx except _cpu.pyx:
#
#     include "_rq_common.pxi"
#
# It declares the rq_cpu.h API and attaches this module's copy of the common C code to the
# one CPU/thread state owned by refquant._cpu, so refquant.set_num_threads() and the ISA cap
# (refquant._cpu.set_isa_cap, used by tests) reach every kernel family.
include "_rq_cpu_decl.pxi"

cdef extern from "Python.h":
    void *PyCapsule_GetPointer(object capsule, const char *name) except? NULL

def _rq_attach_cpu_state():
    from refquant import _cpu as _rq_cpu_module
    rq_cpu_attach(<rq_cpu_state *>PyCapsule_GetPointer(_rq_cpu_module._state_capsule(),
                                                       b"refquant._cpu.state"))

_rq_attach_cpu_state()

def _kernel_isa_level():
    """The ISA level this module's kernels dispatch on (same as refquant._cpu.isa_level())."""
    return rq_isa_level()


cimport numpy as cnp


cdef inline int _ntype(cnp.ndarray a):
    """PyArray_TYPE, or -1 for data stored in the other byte order or not aligned to its item
    size: the kernels read values as native, so such arrays (a big-endian float32, int16, ...)
    are declined and the glue / reference decide (the reference refuses them); the compiled
    code reads parameters (scales, zero points, biases) through typed pointers, so a misaligned
    array (np.frombuffer(buf, offset=1)) is declined too and the glue copies it aligned."""
    return cnp.PyArray_TYPE(a) if cnp.PyArray_ISNOTSWAPPED(a) and cnp.PyArray_ISALIGNED(a) else -1
