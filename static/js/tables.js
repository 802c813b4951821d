// Wide tables scroll sideways inside their box on small screens (deepmed.css). A table that really
// scrolls must be reachable by keyboard (WCAG 2.1.1): it gets tabindex=0 while it overflows. Tables
// in a .table-scroll wrapper are already focusable regions. Re-checked on resize and when a page
// replaces its rows (live worklists).
(function () {
  const SELECTOR = "main table:not(.bars):not(.probabilities)";
  let pending = false;

  function mark() {
    pending = false;
    document.querySelectorAll(SELECTOR).forEach((table) => {
      if (table.closest(".table-scroll")) return;
      const scrolls = table.scrollWidth > table.clientWidth + 1;
      if (scrolls && !table.hasAttribute("tabindex")) {
        table.tabIndex = 0;
        table.dataset.scrollFocus = "1";
      } else if (!scrolls && table.dataset.scrollFocus) {
        table.removeAttribute("tabindex");
        delete table.dataset.scrollFocus;
      }
    });
  }
  function schedule() {
    if (!pending) { pending = true; window.requestAnimationFrame(mark); }
  }

  document.addEventListener("DOMContentLoaded", () => {
    mark();
    window.addEventListener("resize", schedule);
    const main = document.querySelector("main");
    if (main && window.MutationObserver) new MutationObserver(schedule).observe(main, { childList: true, subtree: true });
  });
})();
