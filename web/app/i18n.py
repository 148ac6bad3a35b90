# ruff: noqa: RUF001  (Chinese strings use full-width punctuation on purpose)
"""English and Chinese UI strings, switchable at run time (no reload).

``t(key, **kw)`` formats a string of the current language. Static shell elements carry
``data-i18n="key"`` (text) or ``data-i18n-placeholder`` / ``data-i18n-title``; ``apply``
rewrites them, and every Python-rendered part re-renders through ``on_change`` listeners.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

EN: dict[str, str] = {
    "app.title": "Parley",
    "auth.title": "Sign in to Parley",
    "auth.username": "Username",
    "auth.password": "Password",
    "auth.login": "Sign in",
    "auth.register": "Create account",
    "auth.creating": "Creating account…",
    "auth.signing_in": "Signing in…",
    "auth.unlocking": "Unlocking this device's data…",
    "auth.connecting": "Connecting…",
    "auth.other_tab": "Parley is already open in another tab of this browser.",
    "status.ready": "Ready",
    "status.online": "Online",
    "status.connecting": "Connecting…",
    "status.syncing": "Syncing…",
    "status.offline": "Offline: reconnecting…",
    "status.stopped": "Signed out",
    "tab.chats": "Chats",
    "tab.contacts": "Contacts",
    "tab.settings": "Settings",
    "chats.empty": "No chats yet. Add a contact or create a group.",
    "chats.new_group": "New group",
    "chats.waiting": "🔒 Waiting for key…",
    "conv.pick": "Pick a chat on the left.",
    "conv.placeholder": "Message (Enter sends, Shift+Enter: new line)",
    "conv.send": "Send",
    "conv.details": "Details",
    "conv.waiting": "🔒 Waiting for this message's key…",
    "conv.failed": "⚠ This message could not be decrypted.",
    "conv.recalled": "This message was recalled.",
    "conv.system.created": "{who} started this chat",
    "conv.system.joined": "{who} joined",
    "conv.system.left": "{who} left",
    "conv.system.removed": "{who} was removed",
    "conv.system.role_changed": "{who}: role changed",
    "conv.system.renamed": "The group was renamed",
    "conv.system.disbanded": "The group was disbanded",
    "conv.system.group_update": "Group: {who}",
    "msg.sending": "sending…",
    "msg.sent": "✓ sent",
    "msg.waiting_for_keys": "waiting for keys…",
    "msg.failed": "failed",
    "msg.retry": "Retry",
    "msg.read": "✓✓ read",
    "msg.recall": "Recall",
    "msg.reply": "Reply",
    "conv.replying": "Replying to: {quote}",
    "conv.typing": "{who} is typing…",
    "err.not_ready": "Encryption not ready: nothing was sent.",
    "err.send": "Could not send: {err}",
    "contacts.add": "Add contact",
    "contacts.add_placeholder": "Username",
    "contacts.requested": "Friend request sent to {name}.",
    "contacts.now_contacts": "{name} is now a contact.",
    "contacts.incoming": "Friend requests",
    "contacts.outgoing": "Sent requests",
    "contacts.list": "Contacts",
    "contacts.none": "None yet.",
    "contacts.accept": "Accept",
    "contacts.reject": "Reject",
    "contacts.chat": "Chat",
    "contacts.safety": "Safety number",
    "contacts.not_found": "No user named {name}.",
    "contacts.unavailable": "Contacts are not available on this server yet.",
    "group.name": "Group name",
    "group.members": "Members (usernames, comma-separated)",
    "group.create": "Create",
    "group.cancel": "Cancel",
    "group.member_list": "Members",
    "group.invite": "Invite",
    "group.invite_placeholder": "Username",
    "group.leave": "Leave group",
    "group.left": "You left this group.",
    "role.owner": "owner",
    "role.admin": "admin",
    "role.member": "member",
    "safety.title": "Safety number with {name}",
    "safety.hint": "Compare these digits with {name} in person or on a call.",
    "safety.verify": "Mark as verified",
    "safety.verified": "Verified",
    "settings.language": "Language",
    "settings.theme": "Theme",
    "settings.theme.system": "System",
    "settings.theme.light": "Light",
    "settings.theme.dark": "Dark",
    "settings.devices": "Devices",
    "settings.this_device": "this device",
    "settings.account": "Account",
    "settings.signed_in_as": "Signed in as",
    "settings.user_id": "User id",
    "settings.device_id": "Device",
    "settings.sign_out": "Sign out",
    "settings.remove": "Remove",
    "settings.e2e_ready": "🔒 End-to-end encryption is ready on this device.",
    "settings.e2e_pending": "Encryption not ready yet (keys not published: offline?).",
    "settings.e2e_link": "Encryption not ready: this is another device of your account and must be linked from the first one (not available in the browser yet). Sending is disabled.",
    "auth.signed_out_elsewhere": "This device was signed out. Sign in again.",
    "settings.at_rest": "Messages and keys on this device are encrypted at rest.",
}

ZH: dict[str, str] = {
    "app.title": "Parley",
    "auth.title": "登录 Parley",
    "auth.username": "用户名",
    "auth.password": "密码",
    "auth.login": "登录",
    "auth.register": "创建账号",
    "auth.creating": "正在创建账号…",
    "auth.signing_in": "正在登录…",
    "auth.unlocking": "正在解锁本设备的数据…",
    "auth.connecting": "正在连接…",
    "auth.other_tab": "Parley 已在此浏览器的另一个标签页中打开。",
    "status.ready": "就绪",
    "status.online": "在线",
    "status.connecting": "正在连接…",
    "status.syncing": "正在同步…",
    "status.offline": "离线：正在重新连接…",
    "status.stopped": "已退出",
    "tab.chats": "聊天",
    "tab.contacts": "联系人",
    "tab.settings": "设置",
    "chats.empty": "还没有聊天。添加联系人或创建群组。",
    "chats.new_group": "新建群组",
    "chats.waiting": "🔒 等待密钥…",
    "conv.pick": "请在左侧选择一个聊天。",
    "conv.placeholder": "输入消息（Enter 发送，Shift+Enter 换行）",
    "conv.send": "发送",
    "conv.details": "详情",
    "conv.waiting": "🔒 正在等待这条消息的密钥…",
    "conv.failed": "⚠ 这条消息无法解密。",
    "conv.recalled": "这条消息已被撤回。",
    "conv.system.created": "{who} 发起了聊天",
    "conv.system.joined": "{who} 加入了群组",
    "conv.system.left": "{who} 退出了群组",
    "conv.system.removed": "{who} 被移出群组",
    "conv.system.role_changed": "{who}：角色已变更",
    "conv.system.renamed": "群组已改名",
    "conv.system.disbanded": "群组已解散",
    "conv.system.group_update": "群组：{who}",
    "msg.sending": "发送中…",
    "msg.sent": "✓ 已发送",
    "msg.waiting_for_keys": "等待密钥…",
    "msg.failed": "发送失败",
    "msg.retry": "重试",
    "msg.read": "✓✓ 已读",
    "msg.recall": "撤回",
    "msg.reply": "回复",
    "conv.replying": "回复：{quote}",
    "conv.typing": "{who} 正在输入…",
    "err.not_ready": "加密尚未就绪：没有发送任何内容。",
    "err.send": "无法发送：{err}",
    "contacts.add": "添加联系人",
    "contacts.add_placeholder": "用户名",
    "contacts.requested": "已向 {name} 发送好友请求。",
    "contacts.now_contacts": "{name} 已成为联系人。",
    "contacts.incoming": "好友请求",
    "contacts.outgoing": "已发送的请求",
    "contacts.list": "联系人",
    "contacts.none": "暂无。",
    "contacts.accept": "接受",
    "contacts.reject": "拒绝",
    "contacts.chat": "聊天",
    "contacts.safety": "安全码",
    "contacts.not_found": "没有名为 {name} 的用户。",
    "contacts.unavailable": "此服务器尚不支持联系人。",
    "group.name": "群组名称",
    "group.members": "成员（用户名，逗号分隔）",
    "group.create": "创建",
    "group.cancel": "取消",
    "group.member_list": "成员",
    "group.invite": "邀请",
    "group.invite_placeholder": "用户名",
    "group.leave": "退出群组",
    "group.left": "你已退出该群组。",
    "role.owner": "群主",
    "role.admin": "管理员",
    "role.member": "成员",
    "safety.title": "与 {name} 的安全码",
    "safety.hint": "请当面或通话时与 {name} 核对这些数字。",
    "safety.verify": "标记为已验证",
    "safety.verified": "已验证",
    "settings.language": "语言",
    "settings.theme": "主题",
    "settings.theme.system": "跟随系统",
    "settings.theme.light": "浅色",
    "settings.theme.dark": "深色",
    "settings.devices": "设备",
    "settings.this_device": "本设备",
    "settings.account": "账号",
    "settings.signed_in_as": "当前账号",
    "settings.user_id": "用户 ID",
    "settings.device_id": "设备",
    "settings.sign_out": "退出登录",
    "settings.remove": "移除",
    "settings.e2e_ready": "🔒 本设备的端到端加密已就绪。",
    "settings.e2e_pending": "加密尚未就绪（密钥未发布：是否离线？）。",
    "settings.e2e_link": "加密未就绪：这是你账号的另一台设备，需要从第一台设备关联（浏览器暂不支持）。已禁止发送。",
    "auth.signed_out_elsewhere": "此设备已被登出，请重新登录。",
    "settings.at_rest": "本设备上的消息和密钥均已加密存储。",
}

LANGS = {"en": EN, "zh": ZH}
_lang = "en"
_listeners: list[Callable[[], None]] = []


def lang() -> str:
    return _lang


def t(key: str, **kw: Any) -> str:
    text = LANGS[_lang].get(key) or EN.get(key) or key
    return text.format(**kw) if kw else text


def on_change(fn: Callable[[], None]) -> None:
    _listeners.append(fn)


def set_lang(code: str) -> None:
    """Switch the language now: rewrite the shell's marked elements, re-render the rest."""
    global _lang
    if code not in LANGS:
        return
    _lang = code
    apply()
    for fn in _listeners:
        fn()


def apply() -> None:
    import js  # type: ignore[import-not-found]

    doc = js.document
    doc.documentElement.lang = "zh-CN" if _lang == "zh" else "en"
    doc.body.dataset.lang = _lang
    for node in doc.querySelectorAll("[data-i18n]"):
        node.textContent = t(str(node.dataset.i18n))
    for node in doc.querySelectorAll("[data-i18n-placeholder]"):
        node.placeholder = t(str(node.dataset.i18nPlaceholder))
