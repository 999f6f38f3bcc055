import { createApp } from "vue";
import { createPinia } from "pinia";
import App from "./App.vue";
import "./styles.css";

// `npm run dev` in a plain browser has no shell behind it: a scripted fake one stands in. The
// condition is false in a production build, so the fake is never bundled.
if (import.meta.env.DEV && !("__TAURI_INTERNALS__" in window)) {
  const { installDevShell } = await import("./dev/mockShell");
  installDevShell();
}

createApp(App).use(createPinia()).mount("#app");
