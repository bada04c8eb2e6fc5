// The console's one script: asks before a form that changes something irreversibly is
// sent (forms marked data-confirm). Everything works without it, minus the question.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
