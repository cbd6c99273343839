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

// Defaults written as expressions of other fields (a deadline 30 days after the received date):
// once their inputs are typed, ask the server (crm/defaults) and fill the fields still blank, or
// still holding what was filled before. The save works the value out again; this only shows it.
(function () {
  var form = document.querySelector("form[data-crm-defaults]");
  if (!form || !window.fetch) { return; }
  var settings = JSON.parse(form.getAttribute("data-crm-defaults"));
  var filled = {};
  function input(name) { return form.querySelector("[name='" + name + "']"); }
  function refresh() {
    var query = new URLSearchParams();
    settings.inputs.forEach(function (name) {
      var el = input(name);
      if (el && el.value) { query.append(name, el.value); }
    });
    fetch(settings.url + "?" + query.toString(), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : {}; })
      .then(function (values) {
        settings.fields.forEach(function (name) {
          var el = input(name);
          if (!el || !(name in values)) { return; }
          if (el.value === "" || el.value === filled[name]) {
            el.value = values[name];
            filled[name] = el.value;
            el.dispatchEvent(new Event("change", {bubbles: true}));
          }
        });
      })
      .catch(function () { /* the save fills it anyway */ });
  }
  settings.inputs.forEach(function (name) {
    var el = input(name);
    if (el) { el.addEventListener("change", refresh); }
  });
  if (window.jQuery) {  // the date picker announces its choice through jQuery only
    settings.inputs.forEach(function (name) { window.jQuery(input(name)).on("changeDate change", refresh); });
  }
  refresh();
}());
