/*
 * Embeddable customer chat. One tag on any shop page:
 *   <script src="https://客服网关地址/widget.js" async></script>
 * Optional attributes: data-title="在线客服", data-customer-id, data-customer-name,
 * data-signature (HMAC-SHA256 of the customer id, when the gateway requires it),
 * data-text-helpful="有帮助", data-text-unhelpful="没帮助", data-text-feedback-done="已反馈"
 * (the buttons under bot answers).
 * The gateway address (and the websocket URL) is taken from this script's own src.
 * Page API once loaded: window.GatewayChat.open() / .close().
 */
(function () {
  'use strict';
  var script = document.currentScript;
  if (!script || window.GatewayChat) return;
  var base = new URL(script.src, location.href).href.replace(/\/widget\.js(?:[?#].*)?$/, '');
  var d = script.dataset;
  var options = {
    base: base,
    wsUrl: base.replace(/^http/, 'ws') + '/ws/customer',
    title: d.title || '在线客服',
    customer: d.customerId ? { id: d.customerId, name: d.customerName || '' } : null,
    signature: d.signature || null,
    texts: { helpful: d.textHelpful, unhelpful: d.textUnhelpful, feedbackDone: d.textFeedbackDone },
  };
  var calls = [];
  window.GatewayChat = {
    open: function () { calls.push('open'); },
    close: function () { calls.push('close'); },
  };
  function start() {
    import(base + '/static/widget-embed.js').then(function (mod) {
      var widget = mod.mountWidget(options);
      window.GatewayChat = widget;
      calls.forEach(function (name) { widget[name](); });
    }).catch(function (err) {
      console.error('[在线客服] 组件加载失败', err);
    });
  }
  if (document.body) start();
  else document.addEventListener('DOMContentLoaded', start);
})();
