"use strict";(self.rspackChunkkernelkeeper=self.rspackChunkkernelkeeper||[]).push([[266],{646(e,t,r){var o=r(601),n=r.n(o),i=r(314),a=(r.n(i))()(n());a.push([e.id,`.kk-picker {
  display: flex;
  flex-direction: column;
  width: min(720px, 80vw);
  gap: 6px;
}

.kk-picker-search {
  width: 100%;
  box-sizing: border-box;
  font-size: var(--jp-ui-font-size2);
  padding: 4px 8px;
}

.kk-picker-list {
  max-height: 55vh;
  overflow-y: auto;
  border: var(--jp-border-width) solid var(--jp-border-color2);
}

.kk-picker-group {
  position: sticky;
  top: 0;
  padding: 2px 8px;
  background: var(--jp-layout-color2);
  color: var(--jp-ui-font-color2);
  font-size: var(--jp-ui-font-size0);
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
  direction: rtl; /* a long folder keeps its last part visible */
  text-align: left;
}

.kk-picker-item {
  padding: 3px 8px 3px 16px;
  cursor: pointer;
}

.kk-picker-item:hover {
  background: var(--jp-layout-color2);
}

.kk-picker-item.kk-mod-selected {
  background: var(--jp-brand-color3);
}

.kk-picker-item.kk-mod-broken {
  cursor: not-allowed;
  opacity: 0.6;
}

.kk-picker-title {
  font-weight: 600;
}

.kk-picker-detail {
  font-size: var(--jp-ui-font-size0);
  color: var(--jp-ui-font-color2);
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
}

.kk-picker-none {
  padding: 8px;
  color: var(--jp-ui-font-color2);
}
`,""]),r.d(t,{},{A:a})},314(e){e.exports=function(e){var t=[];return t.toString=function(){return this.map(function(t){var r="",o=void 0!==t[5];return t[4]&&(r+="@supports (".concat(t[4],") {")),t[2]&&(r+="@media ".concat(t[2]," {")),o&&(r+="@layer".concat(t[5].length>0?" ".concat(t[5]):""," {")),r+=e(t),o&&(r+="}"),t[2]&&(r+="}"),t[4]&&(r+="}"),r}).join("")},t.i=function(e,r,o,n,i){"string"==typeof e&&(e=[[null,e,void 0]]);var a={};if(o)for(var c=0;c<this.length;c++){var s=this[c][0];null!=s&&(a[s]=!0)}for(var p=0;p<e.length;p++){var l=[].concat(e[p]);o&&a[l[0]]||(void 0!==i&&(void 0===l[5]||(l[1]="@layer".concat(l[5].length>0?" ".concat(l[5]):""," {").concat(l[1],"}")),l[5]=i),r&&(l[2]&&(l[1]="@media ".concat(l[2]," {").concat(l[1],"}")),l[2]=r),n&&(l[4]?(l[1]="@supports (".concat(l[4],") {").concat(l[1],"}"),l[4]=n):l[4]="".concat(n)),t.push(l))}},t}},601(e){e.exports=function(e){return e[1]}},665(e,t,r){r.r(t);var o=r(72),n=r.n(o),i=r(825),a=r.n(i),c=r(659),s=r.n(c),p=r(56),l=r.n(p),u=r(540),d=r.n(u),f=r(113),v=r.n(f),k=r(646),h={};h.styleTagTransform=v(),h.setAttributes=l(),h.insert=s().bind(null,"head"),h.domAPI=a(),h.insertStyleElement=d(),n()(k.A,h);let m=k.A&&k.A.locals?k.A.locals:void 0;r.d(t,{},{default:m})},72(e){var t=[];function r(e){for(var r=-1,o=0;o<t.length;o++)if(t[o].identifier===e){r=o;break}return r}function o(e,o){for(var n={},i=[],a=0;a<e.length;a++){var c=e[a],s=o.base?c[0]+o.base:c[0],p=n[s]||0,l="".concat(s," ").concat(p);n[s]=p+1;var u=r(l),d={css:c[1],media:c[2],sourceMap:c[3],supports:c[4],layer:c[5]};if(-1!==u)t[u].references++,t[u].updater(d);else{var f=function(e,t){var r=t.domAPI(t);return r.update(e),function(t){t?(t.css!==e.css||t.media!==e.media||t.sourceMap!==e.sourceMap||t.supports!==e.supports||t.layer!==e.layer)&&r.update(e=t):r.remove()}}(d,o);o.byIndex=a,t.splice(a,0,{identifier:l,updater:f,references:1})}i.push(l)}return i}e.exports=function(e,n){var i=o(e=e||[],n=n||{});return function(e){e=e||[];for(var a=0;a<i.length;a++){var c=r(i[a]);t[c].references--}for(var s=o(e,n),p=0;p<i.length;p++){var l=r(i[p]);0===t[l].references&&(t[l].updater(),t.splice(l,1))}i=s}}},659(e){var t={};e.exports=function(e,r){var o=function(e){if(void 0===t[e]){var r=document.querySelector(e);if(window.HTMLIFrameElement&&r instanceof window.HTMLIFrameElement)try{r=r.contentDocument.head}catch(e){r=null}t[e]=r}return t[e]}(e);if(!o)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");o.appendChild(r)}},540(e){e.exports=function(e){var t=document.createElement("style");return e.setAttributes(t,e.attributes),e.insert(t,e.options),t}},56(e,t,r){e.exports=function(e){var t=r.nc;t&&e.setAttribute("nonce",t)}},825(e){e.exports=function(e){if("u"<typeof document)return{update:function(){},remove:function(){}};var t=e.insertStyleElement(e);return{update:function(r){var o,n,i;o="",r.supports&&(o+="@supports (".concat(r.supports,") {")),r.media&&(o+="@media ".concat(r.media," {")),(n=void 0!==r.layer)&&(o+="@layer".concat(r.layer.length>0?" ".concat(r.layer):""," {")),o+=r.css,n&&(o+="}"),r.media&&(o+="}"),r.supports&&(o+="}"),(i=r.sourceMap)&&"u">typeof btoa&&(o+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(i))))," */")),e.styleTagTransform(o,t,e.options)},remove:function(){var e;null===(e=t).parentNode||e.parentNode.removeChild(e)}}}},113(e){e.exports=function(e,t){if(t.styleSheet)t.styleSheet.cssText=e;else{for(;t.firstChild;)t.removeChild(t.firstChild);t.appendChild(document.createTextNode(e))}}}}]);