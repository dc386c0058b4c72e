// Entry of the customer page (/): a full-screen chat on this server.

import { CustomerChat } from './chat-core.js';
import { mountChat } from './widget-ui.js';

const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
const base = location.pathname.replace(/[^/]*$/, ''); // works behind a path prefix too
const chat = new CustomerChat({ wsUrl: `${scheme}//${location.host}${base}ws/customer`, storageKey: 'gateway.chat' });
const ui = mountChat(document.getElementById('app'), chat, { mode: 'page' });
chat.start();
ui.focus();
