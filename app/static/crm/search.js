// A text filter added from "Add Filter" starts as "contains" (包含): FAB's filters start with their
// first operator, "starts with", and a part of a name (泰达 for 广州泰达物流) found nothing. The form
// carries, per column, the position of its "contains" operator; the filter's input is named after
// that position (_flt_<position>_<column>) as FAB's own operator change would name it.
(function ($) {
    "use strict";
    var form = document.getElementById("filter_form");
    if (!$ || !form || !form.dataset.crmContains) { return; }
    var contains = JSON.parse(form.dataset.crmContains);
    $(form).on("click", "a.filter", function () {
        var name = $(this).attr("name"), position = contains[name];
        if (position === undefined) { return; }
        var $row = $(form).find("table.filters tr").last();
        $row.find("select.filter-op").val(String(position)).trigger("change");
        $row.find(".filter_val").attr("name", "_flt_" + position + "_" + name);
    });
})(window.jQuery);
