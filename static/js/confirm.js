// Forms that ask before doing something that cannot be undone: <form data-confirm="question">.
// (An inline onsubmit= handler would be blocked by the Content-Security-Policy.)
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});
