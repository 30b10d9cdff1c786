// Startup for QEMU's mps2-an386 (Cortex-M4): vector table, reset handler, fault exit.
//
// Self-contained (no CMSIS device header), so it builds against any TFLite Micro
// package or checkout. The reset handler copies .data from flash and hands over
// to newlib's crt0 (`_start`; rdimon-crt0 with --specs=rdimon.specs), which zeroes
// .bss, opens semihosting stdio, runs constructors, calls main() and passes its
// return value to exit(): QEMU then exits with that status.

#include <stdint.h>

#include "semihosting.h"

extern uint32_t __StackTop;
extern uint32_t __data_start__, __data_end__, __data_load__;
extern void _start(void) __attribute__((noreturn));

void Reset_Handler(void) __attribute__((noreturn));
void HardFault_Handler(void);
void Default_Handler(void);

void Reset_Handler(void) {
  const uint32_t* from = &__data_load__;
  for (uint32_t* to = &__data_start__; to < &__data_end__;) *to++ = *from++;
  _start();
}

// A fault would otherwise spin forever (and an emulator with it): say so and stop.
void HardFault_Handler(void) {
  SemihostingWrite0("HardFault: the firmware crashed (stack overflow, bad pointer, or an ABI mismatch)\n");
  SemihostingExit(3);
}

void Default_Handler(void) {
  SemihostingWrite0("Unexpected exception or interrupt\n");
  SemihostingExit(3);
}

typedef void (*Handler)(void);

// Initial stack pointer, then the Cortex-M4's 15 system exceptions; no interrupts are enabled.
__attribute__((section(".vectors"), used)) const Handler g_vectors[16] = {
    (Handler)(&__StackTop), Reset_Handler,
    Default_Handler,    // NMI
    HardFault_Handler,  // HardFault
    HardFault_Handler,  // MemManage (escalates to HardFault while disabled)
    HardFault_Handler,  // BusFault
    HardFault_Handler,  // UsageFault
    0, 0, 0, 0,
    Default_Handler,    // SVCall
    Default_Handler,    // DebugMonitor
    0,
    Default_Handler,    // PendSV
    Default_Handler,    // SysTick
};
