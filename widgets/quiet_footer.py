"""The footer, its keys updated in place when the keys it shows change.

Textual's `Footer` removes and mounts all its keys whenever any binding refresh is asked for,
and the app asks after every poll (a step's actions may have become available) and on every
step opened (each step offers its own keys): a layout of the whole screen, a restyle of every
new key, and another layout once the new keys mount, each time. This one compares what it
would show with what it shows and skips the refresh when equal; when the keys differ it
relabels the keys it has (a pool that only grows: keys not needed now are hidden), in the same
turn of the event loop as the change that asked, so the screen is laid out once for both
(issue 9: opening a step on `large` stalled the screen on those layouts). Bindings in groups
(Textual's KeyGroup) fall back to the rebuild.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.reactive import Reactive
from textual.widgets import Footer

try:  # Textual's key widget is not exported: without it (another Textual), keys are rebuilt
    from textual.widgets._footer import FooterKey
except ImportError:  # pragma: no cover - the installed Textual has it
    FooterKey = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from textual.screen import Screen

# One key as the footer shows it: key, its display, description, action, enabled, tooltip.
KeySpec = tuple[str, str, str, str, bool, str]

# Key widgets a footer holds from its first keys on: the main screen shows at most 9 (quit,
# help, validation view, fix; the selected step's own keys, 4 on step 2; revert).
HELD_KEYS = 10


class QuietFooter(Footer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shown: tuple[object, ...] | None = None
        self.rebuilds = 0  # times the keys shown changed (relabelled or recomposed)
        self.relabels = 0  # of which in place
        self.recomposes = 0  # of which rebuilt (the first time, groups, more keys than held)

    def compose(self) -> ComposeResult:
        widgets = list(super().compose())
        palette = [w for w in widgets if w.has_class("-command-palette")]
        keys = [w for w in widgets if w not in palette]
        if FooterKey is not None and keys and all(type(w) is FooterKey for w in keys):
            # Spares, hidden, up to HELD_KEYS: a key that appears later (step 1's undo once
            # its first check answers, step 2's four) is relabelled into one rather than every
            # key mounted and styled again (issue 12: as step 1's first answer came in, 6 keys
            # restyled and the screen laid out once more).
            keys += [spare_key() for _ in range(HELD_KEYS - len(keys))]
        for widget in keys + palette:
            # A key starts compact and the footer's binding then makes it not: two restyles
            # of each key as it mounts (issue 12: the first frame). Born as the footer is
            # (the palette's key is not bound to the footer: it stays as it starts).
            compact = getattr(type(widget), "compact", None)
            if isinstance(compact, Reactive) and not widget.has_class("-command-palette"):
                widget.set_reactive(compact, self.compact)
            yield widget

    def _keys(self) -> tuple[object, ...]:
        return (
            self.compact,
            self.show_command_palette,
            tuple(
                (key, b.action, b.description, b.key_display, enabled, tooltip, b.group)
                for key, (_, b, enabled, tooltip) in self.screen.active_bindings.items()
                if b.show
            ),
        )

    def _specs(self) -> list[KeySpec] | None:
        """The keys Footer.compose would show, outside any group and but the palette's, in
        order; None where a group has several (Footer draws those as a KeyGroup)."""
        by_action: defaultdict[str, list[KeySpec]] = defaultdict(list)
        for _, binding, enabled, tooltip in self.screen.active_bindings.values():
            if not binding.show:
                continue
            if binding.group is not None:
                return None
            display = self.app.get_key_display(binding)
            spec = (binding.key, display, binding.description, binding.action, enabled, tooltip)
            by_action[binding.action].append(spec)
        return [specs[0] for specs in by_action.values()]

    def bindings_changed(self, screen: Screen[Any]) -> None:
        # Now, so the new keys are laid out with whatever changed with them (the step pane),
        # and once more after the next refresh (Textual's moment: focus has settled), which
        # finds them equal and does nothing.
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen:
            self._relabel_or_rebuild()
            self.call_after_refresh(self._relabel_or_rebuild)

    def _relabel_or_rebuild(self) -> None:
        if not self.is_attached:
            return
        keys = self._keys()
        if keys == self._shown and self.children:
            return
        if not self._relabel(keys):
            self.call_next(self.recompose)

    def _relabel(self, keys: tuple[object, ...]) -> bool:
        """Show `keys` with the key widgets already mounted; False where that cannot be
        (none yet, a group, the compact style or the palette key changed, more keys than
        the pool holds: a rebuild then)."""
        children = list(self.children)
        if FooterKey is None:
            return False  # not the Textual this was written for: Footer's own rebuild
        if not all(isinstance(child, FooterKey) for child in children):
            return False  # a KeyGroup or a FooterLabel from a rebuild with groups
        pool = [k for k in children if isinstance(k, FooterKey)]
        pool = [k for k in pool if not k.has_class("-command-palette")]
        if not pool or self._shown is None or keys[:2] != self._shown[:2]:
            return False
        if not all(hasattr(k, "_disabled") for k in pool):
            return False  # FooterKey keeps its state elsewhere in this Textual: rebuild
        specs = self._specs()
        if specs is None or len(specs) > len(pool):
            return False
        for widget, spec in zip(pool, specs, strict=False):
            relabel(widget, spec)
        for widget in pool[len(specs) :]:
            spare(widget)
        self._shown = keys
        self.relabels += 1
        self.rebuilds += 1
        return True

    async def recompose(self) -> None:
        if not self.is_attached:
            return
        keys = self._keys()
        if keys == self._shown and self.children:
            return
        self._shown = keys
        self.rebuilds += 1
        self.recomposes += 1
        await super().recompose()


def spare_key() -> FooterKey:
    """A key widget held for a binding to come: hidden, blank and disabled."""
    widget = FooterKey("", "", "", "", disabled=True)
    widget.display = False
    return widget


def spare(widget: FooterKey) -> None:
    """A key no binding needs now: hidden, blank and disabled (a spare, not a stale key)."""
    if not widget.display and not widget.key:
        return
    relabel(widget, ("", "", "", "", False, ""))
    widget.display = False


def relabel(widget: FooterKey, spec: KeySpec) -> None:
    """Make `widget` show `spec`: repainted, and laid out only when its width can change."""
    key, display, description, action, enabled, tooltip = spec
    before = (widget.key_display, widget.description, widget.display)
    after = (display, description, True)
    if (widget.key, widget.action, widget._disabled, widget.tooltip or "") == (
        key,
        action,
        not enabled,
        tooltip,
    ) and before == after:
        return
    widget.key, widget.key_display, widget.description, widget.action = spec[:4]
    widget._disabled = not enabled
    widget.set_class(not enabled, "-disabled")
    widget.tooltip = tooltip or None
    widget.display = True
    widget.refresh(layout=before != after)
