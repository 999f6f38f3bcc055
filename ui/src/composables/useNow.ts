import { onScopeDispose, readonly, ref, type Ref } from "vue";

// One shared clock for countdowns ("retrying in 4 s"): a single timer however many cards tick.
const now = ref(Date.now());
let users = 0;
let timer: ReturnType<typeof setInterval> | undefined;

/** The current time in ms, updated every second while any component uses it. */
export function useNow(): Readonly<Ref<number>> {
  users += 1;
  now.value = Date.now();
  if (timer === undefined) {
    timer = setInterval(() => {
      now.value = Date.now();
    }, 1000);
  }
  onScopeDispose(() => {
    users -= 1;
    if (users === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
  });
  return readonly(now);
}
