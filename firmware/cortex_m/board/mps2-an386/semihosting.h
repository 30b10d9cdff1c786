// Two raw Arm semihosting calls, for code that cannot rely on newlib's stdio (fault handlers).
#ifndef TFPRUNE_BOARD_SEMIHOSTING_H_
#define TFPRUNE_BOARD_SEMIHOSTING_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

static inline uint32_t SemihostingCall(uint32_t operation, const void* argument) {
  register uint32_t r0 __asm__("r0") = operation;
  register const void* r1 __asm__("r1") = argument;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

// SYS_WRITE0: a NUL-terminated string to the host's console.
static inline void SemihostingWrite0(const char* text) { SemihostingCall(0x04, text); }

// SYS_EXIT with ADS_ApplicationExit and a status (the 32-bit ABI's two-word form).
static inline void SemihostingExit(uint32_t status) __attribute__((noreturn));
static inline void SemihostingExit(uint32_t status) {
  const uint32_t block[2] = {0x20026u, status};
  SemihostingCall(0x20u, block);  // SYS_EXIT_EXTENDED
  SemihostingCall(0x18u, (const void*)0x20026u);  // SYS_EXIT for hosts without the extension
  for (;;) {
  }
}

#ifdef __cplusplus
}
#endif

#endif  // TFPRUNE_BOARD_SEMIHOSTING_H_
