# Declarations of kernels/src/common/rq_cpu.h (included by every kernels/_*.pyx).
cdef extern from "rq_cpu.h" nogil:
    enum:
        RQ_ISA_SCALAR
        RQ_ISA_AVX2
        RQ_ISA_AVX512
        RQ_ISA_AVX512VNNI
        RQ_ISA_AMX
        RQ_ISA_COUNT
        RQ_FEAT_COUNT
        RQ_FEAT_AVX512VBMI
        RQ_FEAT_AVXVNNI
    ctypedef struct rq_cpu_state:
        int magic
    int rq_isa_level()
    int rq_cpu_has(int level)
    int rq_compiled_isa(int level)
    const char *rq_isa_name(int level)
    int rq_isa_from_name(const char *name)
    int rq_cpu_feature(int feat)
    const char *rq_cpu_feature_name(int feat)
    int rq_amx_enable()
    long rq_l2_bytes()
    long rq_llc_bytes()
    int rq_cpu_fast_div()
    int rq_cpu_is_amd()
    int rq_num_threads()
    void rq_set_num_threads(int n)
    int rq_have_openmp()
    void rq_set_isa_cap(int level)
    int rq_get_isa_cap()
    void rq_set_features_off(int mask)
    int rq_get_features_off()
    void rq_cpu_reset()
    const char *rq_cpu_env_error()
    const char *rq_build_compiler()
    const char *rq_build_cflags()
    const char *rq_build_isa_flags(int level)
    rq_cpu_state *rq_cpu_state_ptr()
    void rq_cpu_attach(rq_cpu_state *shared)
