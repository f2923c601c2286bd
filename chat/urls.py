from django.urls import re_path

from . import api, api_attachments, api_mentions

UUID = r"[0-9a-fA-F-]{32,36}"

urlpatterns = [
    re_path(r"^sessions/?$", api.SessionListApi.as_view(), name="session-list"),
    re_path(
        rf"^sessions/(?P<session_id>{UUID})/?$",
        api.SessionDetailApi.as_view(),
        name="session-detail",
    ),
    re_path(
        rf"^sessions/(?P<session_id>{UUID})/members/?$",
        api.MemberListApi.as_view(),
        name="member-list",
    ),
    re_path(
        rf"^sessions/(?P<session_id>{UUID})/members/(?P<user_id>\d+)/?$",
        api.MemberDetailApi.as_view(),
        name="member-detail",
    ),
    re_path(
        rf"^sessions/(?P<session_id>{UUID})/messages/?$",
        api.MessageHistoryApi.as_view(),
        name="message-history",
    ),
    re_path(
        rf"^sessions/(?P<session_id>{UUID})/search/?$",
        api.SearchApi.as_view(),
        name="message-search",
    ),
    re_path(
        rf"^sessions/(?P<session_id>{UUID})/presence/?$",
        api.PresenceApi.as_view(),
        name="session-presence",
    ),
    re_path(r"^messages/?$", api.MessageCreateApi.as_view(), name="message-create"),
    re_path(
        rf"^messages/(?P<message_id>{UUID})/?$",
        api.MessageDetailApi.as_view(),
        name="message-detail",
    ),
    re_path(
        rf"^messages/(?P<message_id>{UUID})/reactions/?$",
        api.ReactionApi.as_view(),
        name="message-reactions",
    ),
    re_path(
        rf"^messages/(?P<message_id>{UUID})/receipts/?$",
        api.MessageReceiptsApi.as_view(),
        name="message-receipts",
    ),
    re_path(
        rf"^messages/(?P<message_id>{UUID})/thread/?$",
        api.ThreadApi.as_view(),
        name="message-thread",
    ),
    re_path(
        rf"^messages/(?P<message_id>{UUID})/attachments/?$",
        api_attachments.MessageAttachmentsApi.as_view(),
        name="message-attachments",
    ),
    re_path(
        rf"^attachments/(?P<attachment_id>{UUID})/?$",
        api_attachments.AttachmentDetailApi.as_view(),
        name="attachment-detail",
    ),
    re_path(
        rf"^attachments/(?P<attachment_id>{UUID})/download/?$",
        api_attachments.AttachmentDownloadApi.as_view(),
        name="attachment-download",
    ),
    re_path(
        rf"^sessions/(?P<session_id>{UUID})/notifications/?$",
        api_mentions.SessionNotifyApi.as_view(),
        name="session-notify",
    ),
    re_path(r"^mentions/?$", api_mentions.MentionListApi.as_view(), name="mention-list"),
]
