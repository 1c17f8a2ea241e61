"""Tracks as Cursor-on-Target events, the XML TAK clients read (and their TAK protobuf form).

One ``<event>`` per track (MITRE CoT 2.0, the TAK dialect):

- ``uid`` ``hub.{audience}.{track id}``: stable for the track's life, apart per picture;
- ``type`` from the track's MIL-STD-2525C SIDC (``SHGPUCI--------`` → ``a-h-G-U-C-I``);
- ``how`` ``m-f`` (fused) for tracks, ``m-g`` (GPS) for friend platforms;
- ``time`` now, ``start`` the time of the position (the picture's), ``stale`` the last
  update plus ``stale_s``, so a track that stops updating greys out on the device;
- ``point`` with ``ce`` the one-sigma error along the covariance's major axis, ``hae``
  when known, else 9999999 (CoT's "unknown"), ``le`` likewise;
- ``detail``: ``track`` (course, speed), ``contact`` (callsign = track id), ``remarks``
  (class and confidence, sources as released), ``__milsym`` (the SIDC) and
  ``__cop_label`` (the label: policy, classification, releasable_to, caveats), an
  element of its own because TAK's protobuf keeps only the ``access`` attribute of an
  event, and ``access`` = the classification.

A track that leaves the picture is deleted on the device: ``t-x-d-d`` with a
``link`` to its uid and ``__forcedelete``. Events are framed as TAK streams want
them: the XML declaration, the event, nothing after ``</event>``.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from xml.sax.saxutils import escape as escape_text
from xml.sax.saxutils import quoteattr

from hub.messages import Track
from hub.publish.geojson import major_sigma

UNKNOWN = 9_999_999.0
"""CoT's value for an unknown ``hae``, ``ce`` or ``le``."""
DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
DELETE_TYPE = "t-x-d-d"


def cot_time(epoch_s: float) -> str:
    """An epoch time as CoT's ISO 8601 UTC with milliseconds: ``2026-12-01T16:35:56.123Z``."""
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def cot_type(sidc: str) -> str:
    """The CoT type of a 2525C SIDC: ``a-{affiliation}-{dimension}[-{function letters}]``.

    Coding scheme and status (positions 1 and 4) have no CoT field; the function
    id (positions 5-10) contributes one CoT field per letter, up to the first dash.
    """
    if len(sidc) < 4:
        return "a-u-G"
    affiliation = sidc[1].lower() if sidc[1] not in "-*" else "u"
    fields = ["a", affiliation, sidc[2].upper()]
    for letter in sidc[4:10]:
        if letter in "-*":
            break
        fields.append(letter.upper())
    return "-".join(fields)


def uid_of(audience: str, track_id: str) -> str:
    """A track's CoT uid in ``audience``'s picture."""
    return f"hub.{audience}.{track_id}"


def track_event(track: Track, audience: str, stale_s: float, now: float | None = None) -> str:
    """The CoT event of one track, framed for a TAK stream."""
    now = time.time() if now is None else now
    start = track.ts  # the time the position is for (the picture's)
    last = track.ts if track.last_update is None else track.last_update
    stale = max(last + stale_s, start + 1.0)  # never at or before start: that means "drop"
    ee, en, nn = track.cov
    label = track.label
    access = f" access={quoteattr(label.classification)}" if label is not None else ""
    how = "m-g" if track.affiliation == "friend" else "m-f"
    hae = UNKNOWN if track.alt is None else track.alt
    speed = math.hypot(track.ve, track.vn)
    course = math.degrees(math.atan2(track.ve, track.vn)) % 360.0
    return (
        f'{DECLARATION}<event version="2.0" uid={quoteattr(uid_of(audience, track.id))} '
        f'type="{cot_type(track.sidc)}" how="{how}" time="{cot_time(now)}" '
        f'start="{cot_time(start)}" stale="{cot_time(stale)}"{access}>'
        f'<point lat="{track.lat:.7f}" lon="{track.lon:.7f}" hae="{hae:.1f}" '
        f'ce="{major_sigma(ee, en, nn):.1f}" le="{UNKNOWN:.1f}"/>'
        f'<detail><track course="{course:.1f}" speed="{speed:.2f}"/>'
        f'<contact callsign={quoteattr(track.id)}/>'
        f"<remarks>{escape_text(remarks(track))}</remarks>"
        f'<__milsym id={quoteattr(track.sidc)}/>{label_element(track)}</detail></event>')


def remarks(track: Track) -> str:
    """Class and its probability, and the sources as released."""
    confidence = track.cls_probs.get(track.cls, 0.0)
    sources = ", ".join(track.sources) if track.sources else "not released"
    return f"{track.cls} ({confidence:.0%}); {track.status}; sources: {sources}"


def label_element(track: Track) -> str:
    """``<__cop_label .../>``: the track's label, kept whole in TAK's protobuf ``xmlDetail``."""
    label = track.label
    if label is None:
        return ""
    return (f"<__cop_label policy={quoteattr(label.policy)} "
            f"classification={quoteattr(label.classification)} "
            f"releasable_to={quoteattr(' '.join(label.releasable_to))} "
            f"caveats={quoteattr(' '.join(label.caveats))}/>")


def delete_event(audience: str, track_id: str, now: float | None = None) -> str:
    """The event that removes a track from the device at once (ATAK: ``__forcedelete``)."""
    now = time.time() if now is None else now
    uid = uid_of(audience, track_id)
    stamp = cot_time(now)
    return (f'{DECLARATION}<event version="2.0" uid={quoteattr(uid + ".delete")} '
            f'type="{DELETE_TYPE}" how="h-g-i-g-o" time="{stamp}" start="{stamp}" '
            f'stale="{cot_time(now + 60.0)}">'
            f'<point lat="0.0" lon="0.0" hae="{UNKNOWN:.1f}" ce="{UNKNOWN:.1f}" '
            f'le="{UNKNOWN:.1f}"/><detail><link uid={quoteattr(uid)} relation="none" '
            f'type="none"/><__forcedelete/></detail></event>')


def to_frame(xml_event: str) -> bytes:
    """One XML event as a TAK Protocol v1 stream frame (via takproto)."""
    from takproto import TAKProtoVer, xml2proto  # protobuf loads only once a client switches

    return bytes(xml2proto(xml_event, TAKProtoVer.STREAM))
