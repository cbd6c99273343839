// Workflow step dialogs on a record page (app/web/stepdialog.py). A step with something to ask
// opens its <dialog> (modal: focus moves into it, Esc closes it, the page behind is inert);
// the comment typed on the page comes along. Its one submit is posted in place: a refusal is
// shown in the dialog, field by field, nothing saved; a success loads the record page once.
(function () {
    "use strict";
    if (window.crmStepDialogs) { return; }
    window.crmStepDialogs = true;

    function pageComment() {
        var box = document.getElementById("crm-step-comment");
        return box ? box.value : "";
    }

    function clearErrors(form) {
        var alert = form.querySelector(".crm-step-error");
        alert.hidden = true;
        alert.textContent = "";
        form.querySelectorAll(".crm-step-field-error").forEach(function (p) { p.hidden = true; p.textContent = ""; });
        form.querySelectorAll(".has-error").forEach(function (g) { g.classList.remove("has-error"); });
    }

    function showErrors(form, answer) {
        var alert = form.querySelector(".crm-step-error");
        var unplaced = [];
        var first = null;
        Object.keys(answer.errors || {}).forEach(function (name) {
            var group = form.querySelector('[data-crm-field="' + name + '"]');
            var said = (answer.errors[name] || []).join(" ");
            if (group) {
                group.classList.add("has-error");
                var p = group.querySelector(".crm-step-field-error");
                p.textContent = said;
                p.hidden = false;
                first = first || group.querySelector("input:not([type=hidden]), select, textarea");
            } else {
                unplaced.push(said);
            }
        });
        var general = answer.message && !Object.keys(answer.errors || {}).length ? [answer.message] : unplaced;
        if (general.length) {
            alert.textContent = general.join(" ");
            alert.hidden = false;
        }
        (first || alert).focus && (first || alert).focus();
    }

    function lookups(dialog) {
        // a link over a big table asks the form's lookup as the person types; the dropdown lives
        // inside the dialog (the top layer would hide one hung on <body>)
        if (!window.jQuery || !jQuery.fn.select2) { return; }
        jQuery(dialog).find("select[data-crm-step-lookup]").each(function () {
            var el = jQuery(this);
            if (el.data("select2")) { return; }
            el.select2({
                theme: "bootstrap", width: "100%", allowClear: true, dropdownParent: jQuery(dialog),
                placeholder: el.attr("data-placeholder") || "",
                ajax: {
                    url: el.attr("data-crm-step-lookup"), dataType: "json", delay: 250,
                    data: function (params) { return {q: params.term || "", page: params.page || 1}; },
                    processResults: function (data) { return {results: data.results, pagination: {more: data.more}}; }
                }
            });
        });
    }

    function open(button) {
        var dialog = document.getElementById(button.getAttribute("data-crm-dialog"));
        if (!dialog || typeof dialog.showModal !== "function") { return; }
        var form = dialog.querySelector("form");
        clearErrors(form);
        var comment = form.querySelector(".crm-step-dialog-comment");
        if (comment && !comment.value) { comment.value = pageComment(); }
        lookups(dialog);
        dialog.showModal();
        var first = form.querySelector("input:not([type=hidden]), select, textarea");
        if (first) { first.focus(); }
        dialog.crmOpener = button;
    }

    function submit(event) {
        var form = event.target;
        event.preventDefault();
        clearErrors(form);
        var comment = form.querySelector(".crm-step-dialog-comment");
        if (comment && comment.required && !comment.value.trim()) {
            showErrors(form, {errors: {comment: [comment.getAttribute("data-required-text") || form.getAttribute("data-required-text") || ""]}});
            comment.focus();
            return;
        }
        var button = form.querySelector(".crm-step-submit");
        button.disabled = true;
        // form.action would be the <input name="action"> of the step, not the address
        fetch(form.getAttribute("action"), {method: "POST", body: new FormData(form), credentials: "same-origin",
                            headers: {"Accept": "application/json"}})
            .then(function (response) {
                return response.json().catch(function () { return {ok: false, message: response.status + " " + response.statusText}; });
            })
            .then(function (answer) {
                if (answer.ok) {
                    window.location.assign(answer.redirect);
                    return;
                }
                button.disabled = false;
                showErrors(form, answer);
            })
            .catch(function (error) {
                button.disabled = false;
                showErrors(form, {message: String(error)});
            });
    }

    function init() {
        document.querySelectorAll(".crm-step-open").forEach(function (button) {
            button.addEventListener("click", function () { open(button); });
        });
        document.querySelectorAll("dialog.crm-step-dialog").forEach(function (dialog) {
            dialog.querySelector("form").addEventListener("submit", submit);
            dialog.querySelector(".crm-step-cancel").addEventListener("click", function () { dialog.close(); });
            dialog.addEventListener("close", function () {
                if (dialog.crmOpener) { dialog.crmOpener.focus(); }
            });
            // a click on the backdrop (outside the dialog's box) closes it, as Esc does
            dialog.addEventListener("click", function (event) {
                if (event.target === dialog) {
                    var box = dialog.getBoundingClientRect();
                    if (event.clientX < box.left || event.clientX > box.right || event.clientY < box.top || event.clientY > box.bottom) {
                        dialog.close();
                    }
                }
            });
        });
    }

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", init);
    } else {
        init();
    }
}());
