// A record page opened at #<tab> (a form saved from that tab comes back to it): show that tab,
// whatever tab FAB's ab_keep_tab.js remembered.
(function () {
    "use strict";
    if (!window.jQuery || !window.location.hash) { return; }
    jQuery(function () {
        var name = window.location.hash.slice(1);
        var link = jQuery(".nav-tabs a[data-toggle='tab']").filter(function () {
            return this.getAttribute("href") === "#" + name;
        });
        if (link.length) { link.first().tab("show"); }
    });
}());
