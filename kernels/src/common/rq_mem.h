/* rq_mem.h -- scalar loads and stores at any byte address.
 *
 * numpy arrays can start at any byte (np.frombuffer(buf, offset=1), fields of packed records,
 * the guard-byte tests), and the kernels read A rows four bytes at a time at offsets that need
 * not be multiples of 4.  Dereferencing a misaligned int32_t / float pointer is undefined
 * behaviour in C even where x86 allows the access (UndefinedBehaviorSanitizer reports it), and
 * a compiler may assume the alignment.  memcpy of a fixed small size is defined at any address
 * and compiles to the same single mov (or a broadcast from memory).
 */
#ifndef RQ_MEM_H
#define RQ_MEM_H

#include <stdint.h>
#include <string.h>

static inline int32_t rq_ld_i32(const void *p) { int32_t v; memcpy(&v, p, 4); return v; }
static inline int16_t rq_ld_i16(const void *p) { int16_t v; memcpy(&v, p, 2); return v; }
static inline uint16_t rq_ld_u16(const void *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline float rq_ld_f32(const void *p) { float v; memcpy(&v, p, 4); return v; }
static inline void rq_st_u16(void *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void rq_st_f32(void *p, float v) { memcpy(p, &v, 4); }

#endif
