// The board's clock for timing: the CMSDK APB timer 0 at 0x40000000.
//
// It counts down at the 25 MHz peripheral clock. Under QEMU's `-icount shift=0`
// every instruction advances virtual time by 1 ns, so one tick is 40 emulated
// instructions and counts are deterministic: a measure of work, not of a real
// core's cycles (QEMU models no pipeline, cache or wait states).
#ifndef TFPRUNE_BOARD_TIMER_H_
#define TFPRUNE_BOARD_TIMER_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TFPRUNE_TIMER0_BASE 0x40000000u
#define TFPRUNE_TIMER_HZ 25000000u

typedef struct {
  volatile uint32_t ctrl;    // bit 0: enable
  volatile uint32_t value;   // current count, counting down
  volatile uint32_t reload;  // reloaded into value on reaching 0
  volatile uint32_t intstatus;
} CmsdkTimer;

// Starts timer 0 free-running from 0xFFFFFFFF (wraps after 171 s of virtual time).
static inline void BoardTimerStart(void) {
  CmsdkTimer* timer = (CmsdkTimer*)TFPRUNE_TIMER0_BASE;
  timer->ctrl = 0;
  timer->reload = 0xFFFFFFFFu;
  timer->value = 0xFFFFFFFFu;
  timer->ctrl = 1;
}

// Ticks counted since BoardTimerStart(), as an increasing number.
static inline uint32_t BoardTimerTicks(void) {
  return 0xFFFFFFFFu - ((CmsdkTimer*)TFPRUNE_TIMER0_BASE)->value;
}

#ifdef __cplusplus
}
#endif

#endif  // TFPRUNE_BOARD_TIMER_H_
