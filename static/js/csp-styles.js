// The Content-Security-Policy allows no style="" attribute (style-src-attr 'none'): markup cannot carry
// inline styles, so injected HTML cannot restyle a page. Scripts of the portal's own origin (Plotly draws
// its charts with d3's attr("style", …)) keep working: a style attribute set from script goes through the
// CSSOM (element.style.cssText), which the policy does not govern. Loaded before any other script.
(function () {
  var setAttribute = Element.prototype.setAttribute;
  var setAttributeNS = Element.prototype.setAttributeNS;
  Element.prototype.setAttribute = function (name, value) {
    if (typeof name === "string" && name.toLowerCase() === "style" && this.style) {
      this.style.cssText = String(value);
      return undefined;
    }
    return setAttribute.apply(this, arguments);
  };
  Element.prototype.setAttributeNS = function (ns, name, value) {
    if (!ns && typeof name === "string" && name.toLowerCase() === "style" && this.style) {
      this.style.cssText = String(value);
      return undefined;
    }
    return setAttributeNS.apply(this, arguments);
  };
})();
