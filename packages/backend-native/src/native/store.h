// Native tensor memory of the CPU addon: 64-byte aligned buffers of 4-byte elements, addressed by
// small integer ids (0 is never valid). Single-threaded: only the JS thread allocates and frees.
#pragma once
#include <cstdint>

namespace vlmix {

int32_t store_alloc(int64_t nelem);
void* store_ptr(int32_t id);
int64_t store_nelem(int32_t id);
void store_free(int32_t id);
int64_t store_bytes();
int64_t store_peak();
int64_t store_count();
void store_reset_peak();

}  // namespace vlmix
