/**
 * sessions.js: the session list page. It connects to the gateway (without joining any
 * session) so that browsing the list counts as being online, as on the room page: people
 * sharing a session see a green dot while you are anywhere in the app.
 */

import { ChatClient } from "./chat-client.js";

const client = new ChatClient();
window.chatClient = client;
client.connect().catch(() => {});
