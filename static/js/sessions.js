/**
 * sessions.js: the session list page. It connects to the gateway (without joining any
 * session) so that browsing the list counts as being online, as on the room page: people
 * sharing a session see a green dot while you are anywhere in the app. Notifications
 * (`notification:new`) count up the rows' badges live (notifications.js).
 */

import { ChatClient } from "./chat-client.js";
import { bumpSession, Notifier, refreshCounts } from "./notifications.js";

const client = new ChatClient();
window.chatClient = client;
new Notifier({
  client,
  roomUrl: (sessionId) => `/rooms/${sessionId}/`,
  arrived: ({ sessionId, message, mentioned }) =>
    bumpSession(sessionId, { message, mentioned }),
});
// Back on this page (another tab, the back button's cache): what was read meanwhile clears.
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refreshCounts();
});
window.addEventListener("pageshow", (event) => {
  if (event.persisted) refreshCounts();
});
client.connect().catch(() => {});
