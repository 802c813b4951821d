// Wide tables scroll sideways inside their box on small screens (deepmed.css). A table that really
// scrolls must be reachable by keyboard (WCAG 2.1.1): it gets tabindex=0 while it overflows. Tables
// in a .table-scroll wrapper: the wrapper likewise, when it is what scrolls. Re-checked on resize
// and when a page replaces its rows (live worklists).
(function () {
  const SELECTOR = "main table:not(.bars):not(.probabilities)";
  let pending = false;

  function focusWhileScrolling(box) {
    const scrolls = box.scrollWidth > box.clientWidth + 1;
    if (scrolls && !box.hasAttribute("tabindex")) {
      box.tabIndex = 0;
      box.dataset.scrollFocus = "1";
    } else if (!scrolls && box.dataset.scrollFocus) {
      box.removeAttribute("tabindex");
      delete box.dataset.scrollFocus;
    }
  }

  function mark() {
    pending = false;
    document.querySelectorAll(SELECTOR).forEach((table) => {
      // The table itself may scroll (global rule) or its .table-scroll wrapper: whichever does.
      focusWhileScrolling(table);
      const wrapper = table.closest(".table-scroll");
      if (wrapper) focusWhileScrolling(wrapper);
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
