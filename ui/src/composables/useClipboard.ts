// Copying text for a bug report. The async clipboard API first; where the webview refuses it, the
// text is selected on screen (and `copy` tried) so Ctrl+C finishes the job.
export type CopyResult = "copied" | "selected";

export function selectContents(el: HTMLElement): void {
  const selection = window.getSelection();
  if (!selection) return;
  const range = document.createRange();
  range.selectNodeContents(el);
  selection.removeAllRanges();
  selection.addRange(range);
}

export async function copyText(text: string, fallback: HTMLElement | null): Promise<CopyResult> {
  try {
    if (!navigator.clipboard) throw new Error("no clipboard");
    await navigator.clipboard.writeText(text);
    return "copied";
  } catch {
    if (!fallback) return "selected";
    selectContents(fallback);
    try {
      return document.execCommand("copy") ? "copied" : "selected";
    } catch {
      return "selected";
    }
  }
}
