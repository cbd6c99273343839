// A field the browser refuses (required, a pattern) inside a collapsed form section: open the
// section, so the browser can point at the field instead of refusing the save without a word.
document.addEventListener("invalid", function (event) {
  var panel = event.target.closest ? event.target.closest(".panel-collapse.collapse") : null;
  if (panel && !panel.classList.contains("in")) {
    panel.classList.add("in");
    panel.style.height = "";
    setTimeout(function () { event.target.focus(); event.target.reportValidity && event.target.reportValidity(); }, 0);
  }
}, true);
