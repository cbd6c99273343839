// FAB's dropdowns (choices, people, small link lists, the list filters) are set up by its own
// ab.js / ab_filters.js with an English placeholder ("Select a State") and Select2's English
// messages. This runs after select2 and before ab.js: every later select2(...) call gets the
// page's language (texts on this script tag, translated by the server) unless it brings its own.
(function ($) {
    "use strict";
    if (!$ || !$.fn.select2 || $.fn.select2.crmLanguage) { return; }
    var tag = document.currentScript, texts = tag ? tag.dataset : {};
    var language = {
        noResults: function () { return texts.noResults; },
        searching: function () { return texts.searching; },
        loadingMore: function () { return texts.more; },
        errorLoading: function () { return texts.error; },
        removeAllItems: function () { return texts.clear; },
        removeItem: function () { return texts.clear; },
        inputTooShort: function () { return texts.typeMore; },
        inputTooLong: function () { return texts.typeLess; },
        maximumSelected: function () { return texts.tooMany; }
    };
    var original = $.fn.select2;
    $.fn.select2 = function (options) {
        if (options && typeof options === "object") {
            options = $.extend({}, options);
            if (options.placeholder === "Select a State") { options.placeholder = texts.placeholder; }
            if (!options.language) { options.language = language; }
            return original.call(this, options);
        }
        return original.apply(this, arguments);
    };
    $.extend($.fn.select2, original);  // its defaults and AMD loader stay reachable
    $.fn.select2.crmLanguage = true;
}(window.jQuery));
