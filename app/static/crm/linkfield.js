// Link dropdowns on big tables (app/runtime/linkfield.py): Select2 asks the view's lookup
// endpoint as the user types, 20 records a page, and shows more as the list scrolls. A link
// narrowed by another field (data-crm-within: a contact by the chosen customer) asks only for
// that choice's records, and is cleared when that choice changes.
(function () {
    "use strict";
    if (window.crmLinkFields) { return; }
    window.crmLinkFields = true;

    function init() {
        if (!window.jQuery || !jQuery.fn.select2) { return; }
        jQuery("select[data-crm-lookup]").each(function () {
            var el = jQuery(this);
            if (el.data("select2")) { return; }
            var within = el.attr("data-crm-within") ? jQuery(document.getElementById(el.attr("data-crm-within"))) : jQuery();
            el.select2({
                theme: "bootstrap",
                width: "100%",
                allowClear: !el.prop("required"),
                placeholder: el.attr("data-placeholder") || "",
                minimumInputLength: 0,
                language: {
                    noResults: function () { return el.attr("data-no-results"); },
                    searching: function () { return el.attr("data-searching"); },
                    loadingMore: function () { return el.attr("data-more"); }
                },
                ajax: {
                    url: el.attr("data-crm-lookup"),
                    dataType: "json",
                    delay: 250,
                    data: function (params) {
                        var query = {q: params.term || "", page: params.page || 1};
                        if (within.length && within.val()) { query.within = within.val(); }
                        return query;
                    },
                    processResults: function (data) { return {results: data.results, pagination: {more: data.more}}; }
                }
            });
            within.on("change", function () {
                if (el.val()) { el.val(null).trigger("change"); }
            });
        });
    }

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", init);
    } else {
        init();
    }
}());
