"""Decoding NetFlow v1/v5/v7, NetFlow v9 (RFC 3954) and IPFIX (RFC 7011/7012) export messages.

Routers, firewalls and SOHO gateways report traffic as flow export messages; an ORB node shows
up in them long before anyone looks at the device itself. This module turns export messages
(UDP payloads) into columnar batches of records, and :func:`to_flows` maps those onto the
``flows`` table.

Design, and why:

* **Templates are state.** v9 and IPFIX data are meaningless without the template that the
  exporter sent earlier, maybe in another file. Templates live in a :class:`TemplateCache` keyed
  by (exporter address, protocol version, observation domain / source id) that outlives one
  :class:`Decoder`, so a caller can decode a template file and then a data file.
* **Bulk decoding.** A data set of a fixed-length template is an array of equal-sized records,
  so it is decoded with one ``np.frombuffer`` over a structured dtype built from the template.
  Better still, sets of the same template from many messages are concatenated and decoded in one
  call at :meth:`Decoder.flush`; Python only walks message and set headers. Only templates with
  variable-length fields (IPFIX length 255/0xFFFF) go through a per-record path. The fixed
  layouts of v1, v5 and v7 are templates too (:data:`FIXED_FORMATS`), so they share that path.
* **Columns on demand.** A batch's columns are converted from the raw view when first read
  (:mod:`orbwatch.sources.netflow.columns`): mapping onto ``flows`` reads about half of a
  router's fields, and each conversion is a pass over every record.
* **Nothing is lost silently.** Every byte fed is either decoded (headers, templates, records,
  padding) or ends in a :class:`Reject` with its offset, a reason and the raw bytes as hex;
  :attr:`Decoder.stats` keeps the byte accounting and counters per reason. Data that arrives
  before its template is held (bounded) and decoded when the template comes; what is still held
  at :meth:`Decoder.finish` is rejected with "no template N from exporter X domain Y".
"""

from __future__ import annotations

import struct
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from orbwatch.sources.netflow.columns import (
    Column,
    Columns,
    ElementColumns,
)

VARIABLE = 0xFFFF
MAX_HELD_SETS = 10_000
REVERSE_PEN = 29305  # RFC 5103 bidirectional flows: reverse direction of any IANA element
CERT_PEN = 6871

# ---------------------------------------------------------------------------------------------
# Information elements. Kinds: u unsigned, i signed, f float, ip4/ip6 addresses, mac, str text,
# oct octets (hex), ntp NTP timestamp (micro/nanosecond precision), list RFC 6313 structured
# data (skipped and counted), ? = by length.
# Times in seconds/milliseconds stay integers here; to_flows converts them.

_IANA_TEXT = """
1 octetDeltaCount u|2 packetDeltaCount u|3 deltaFlowCount u|4 protocolIdentifier u
5 ipClassOfService u|6 tcpControlBits u|7 sourceTransportPort u|8 sourceIPv4Address ip4
9 sourceIPv4PrefixLength u|10 ingressInterface u|11 destinationTransportPort u
12 destinationIPv4Address ip4|13 destinationIPv4PrefixLength u|14 egressInterface u
15 ipNextHopIPv4Address ip4|16 bgpSourceAsNumber u|17 bgpDestinationAsNumber u
18 bgpNextHopIPv4Address ip4|19 postMCastPacketDeltaCount u|20 postMCastOctetDeltaCount u
21 flowEndSysUpTime u|22 flowStartSysUpTime u|23 postOctetDeltaCount u
24 postPacketDeltaCount u|25 minimumIpTotalLength u|26 maximumIpTotalLength u
27 sourceIPv6Address ip6|28 destinationIPv6Address ip6|29 sourceIPv6PrefixLength u
30 destinationIPv6PrefixLength u|31 flowLabelIPv6 u|32 icmpTypeCodeIPv4 u|33 igmpType u
34 samplingInterval u|35 samplingAlgorithm u|36 flowActiveTimeout u|37 flowIdleTimeout u
38 engineType u|39 engineId u|40 exportedOctetTotalCount u|41 exportedMessageTotalCount u
42 exportedFlowRecordTotalCount u|44 sourceIPv4Prefix ip4|45 destinationIPv4Prefix ip4
46 mplsTopLabelType u|47 mplsTopLabelIPv4Address ip4|48 samplerId u|49 samplerMode u
50 samplerRandomInterval u|51 classId u|52 minimumTTL u|53 maximumTTL u
54 fragmentIdentification u|55 postIpClassOfService u|56 sourceMacAddress mac
57 postDestinationMacAddress mac|58 vlanId u|59 postVlanId u|60 ipVersion u
61 flowDirection u|62 ipNextHopIPv6Address ip6|63 bgpNextHopIPv6Address ip6
64 ipv6ExtensionHeaders u|70 mplsTopLabelStackSection oct|71 mplsLabelStackSection2 oct
72 mplsLabelStackSection3 oct|73 mplsLabelStackSection4 oct|74 mplsLabelStackSection5 oct
75 mplsLabelStackSection6 oct|76 mplsLabelStackSection7 oct|77 mplsLabelStackSection8 oct
78 mplsLabelStackSection9 oct|79 mplsLabelStackSection10 oct|80 destinationMacAddress mac
81 postSourceMacAddress mac|82 interfaceName str|83 interfaceDescription str
84 samplerName str|85 octetTotalCount u|86 packetTotalCount u|87 flagsAndSamplerId u
88 fragmentOffset u|89 forwardingStatus u|90 mplsVpnRouteDistinguisher oct
91 mplsTopLabelPrefixLength u|92 srcTrafficIndex u|93 dstTrafficIndex u
94 applicationDescription str|95 applicationId oct|96 applicationName str
98 postIpDiffServCodePoint u|99 multicastReplicationFactor u|100 className str
101 classificationEngineId u|102 layer2packetSectionOffset u|103 layer2packetSectionSize u
104 layer2packetSectionData oct|128 bgpNextAdjacentAsNumber u|129 bgpPrevAdjacentAsNumber u
130 exporterIPv4Address ip4|131 exporterIPv6Address ip6|132 droppedOctetDeltaCount u
133 droppedPacketDeltaCount u|134 droppedOctetTotalCount u|135 droppedPacketTotalCount u
136 flowEndReason u|137 commonPropertiesId u|138 observationPointId u
139 icmpTypeCodeIPv6 u|140 mplsTopLabelIPv6Address ip6|141 lineCardId u|142 portId u
143 meteringProcessId u|144 exportingProcessId u|145 templateId u|146 wlanChannelId u
147 wlanSSID str|148 flowId u|149 observationDomainId u|150 flowStartSeconds u
151 flowEndSeconds u|152 flowStartMilliseconds u|153 flowEndMilliseconds u
154 flowStartMicroseconds ntp|155 flowEndMicroseconds ntp|156 flowStartNanoseconds ntp
157 flowEndNanoseconds ntp|158 flowStartDeltaMicroseconds u|159 flowEndDeltaMicroseconds u
160 systemInitTimeMilliseconds u|161 flowDurationMilliseconds u
162 flowDurationMicroseconds u|163 observedFlowTotalCount u|164 ignoredPacketTotalCount u
165 ignoredOctetTotalCount u|166 notSentFlowTotalCount u|167 notSentPacketTotalCount u
168 notSentOctetTotalCount u|176 icmpTypeIPv4 u|177 icmpCodeIPv4 u|178 icmpTypeIPv6 u
179 icmpCodeIPv6 u|180 udpSourcePort u|181 udpDestinationPort u|182 tcpSourcePort u
183 tcpDestinationPort u|184 tcpSequenceNumber u|185 tcpAcknowledgementNumber u
186 tcpWindowSize u|189 ipHeaderLength u|190 totalLengthIPv4 u|191 payloadLengthIPv6 u
192 ipTTL u|193 nextHeaderIPv6 u|195 ipDiffServCodePoint u|196 ipPrecedence u
197 fragmentFlags u|198 octetDeltaSumOfSquares u|199 octetTotalSumOfSquares u
200 mplsTopLabelTTL u|201 mplsLabelStackLength u|202 mplsLabelStackDepth u
203 mplsTopLabelExp u|204 ipPayloadLength u|205 udpMessageLength u|206 isMulticast u
207 ipv4IHL u|208 ipv4Options u|209 tcpOptions u|210 paddingOctets oct
211 collectorIPv4Address ip4|212 collectorIPv6Address ip6|213 exportInterface u
214 exportProtocolVersion u|215 exportTransportProtocol u|216 collectorTransportPort u
217 exporterTransportPort u|218 tcpSynTotalCount u|219 tcpFinTotalCount u
220 tcpRstTotalCount u|221 tcpPshTotalCount u|222 tcpAckTotalCount u|223 tcpUrgTotalCount u
224 ipTotalLength u|225 postNATSourceIPv4Address ip4|226 postNATDestinationIPv4Address ip4
227 postNAPTSourceTransportPort u|228 postNAPTDestinationTransportPort u
229 natOriginatingAddressRealm u|230 natEvent u|231 initiatorOctets u|232 responderOctets u
233 firewallEvent u
234 ingressVRFID u|235 egressVRFID u|236 VRFname str|237 postMplsTopLabelExp u
238 tcpWindowScale u|239 biflowDirection u|240 ethernetHeaderLength u
241 ethernetPayloadLength u|242 ethernetTotalLength u|243 dot1qVlanId u
244 dot1qPriority u|245 dot1qCustomerVlanId u|246 dot1qCustomerPriority u
252 ingressPhysicalInterface u|253 egressPhysicalInterface u|254 postDot1qVlanId u
255 postDot1qCustomerVlanId u|256 ethernetType u|257 postIpPrecedence u
258 collectionTimeMilliseconds u|259 exportSctpStreamId u|260 maxExportSeconds u
261 maxFlowEndSeconds u|262 messageMD5Checksum oct|263 messageScope u
264 minExportSeconds u|265 minFlowStartSeconds u|266 opaqueOctets oct|267 sessionScope u
268 maxFlowEndMicroseconds ntp|269 maxFlowEndMilliseconds u|270 maxFlowEndNanoseconds ntp
271 minFlowStartMicroseconds ntp|272 minFlowStartMilliseconds u|273 minFlowStartNanoseconds ntp
274 collectorCertificate oct|275 exporterCertificate oct|276 dataRecordsReliability u
277 observationPointType u|278 newConnectionDeltaCount u|279 connectionSumDurationSeconds u
280 connectionTransactionId u|281 postNATSourceIPv6Address ip6
282 postNATDestinationIPv6Address ip6|283 natPoolId u|284 natPoolName str
285 anonymizationFlags u|286 anonymizationTechnique u|287 informationElementIndex u
288 p2pTechnology str|289 tunnelTechnology str|290 encryptedTechnology str
291 basicList list|292 subTemplateList list|293 subTemplateMultiList list
294 bgpValidityState u|295 IPSecSPI u|296 greKey u|297 natType u|298 initiatorPackets u
299 responderPackets u|300 observationDomainName str|301 selectionSequenceId u
302 selectorId u|303 informationElementId u|304 selectorAlgorithm u
305 samplingPacketInterval u|306 samplingPacketSpace u|307 samplingTimeInterval u
308 samplingTimeSpace u|309 samplingSize u|310 samplingPopulation u
311 samplingProbability f|312 dataLinkFrameSize u|313 ipHeaderPacketSection oct
314 ipPayloadPacketSection oct|315 dataLinkFrameSection oct|316 mplsLabelStackSection oct
317 mplsPayloadPacketSection oct|318 selectorIdTotalPktsObserved u
319 selectorIdTotalPktsSelected u|320 absoluteError f|321 relativeError f
322 observationTimeSeconds u|323 observationTimeMilliseconds u
324 observationTimeMicroseconds ntp|325 observationTimeNanoseconds ntp
326 digestHashValue u|327 hashIPPayloadOffset u|328 hashIPPayloadSize u
329 hashOutputRangeMin u|330 hashOutputRangeMax u|331 hashSelectedRangeMin u
332 hashSelectedRangeMax u|333 hashDigestOutput u|334 hashInitialiserValue u
335 selectorName str|336 upperCILimit f|337 lowerCILimit f|338 confidenceLevel f
339 informationElementDataType u|340 informationElementDescription str
341 informationElementName str|342 informationElementRangeBegin u
343 informationElementRangeEnd u|344 informationElementSemantics u
345 informationElementUnits u|346 privateEnterpriseNumber u|347 virtualStationInterfaceId oct
348 virtualStationInterfaceName str|349 virtualStationUUID oct|350 virtualStationName str
351 layer2SegmentId u|352 layer2OctetDeltaCount u|353 layer2OctetTotalCount u
354 ingressUnicastPacketTotalCount u|355 ingressMulticastPacketTotalCount u
356 ingressBroadcastPacketTotalCount u|357 egressUnicastPacketTotalCount u
358 egressBroadcastPacketTotalCount u|359 monitoringIntervalStartMilliSeconds u
360 monitoringIntervalEndMilliSeconds u|361 portRangeStart u|362 portRangeEnd u
363 portRangeStepSize u|364 portRangeNumPorts u|365 staMacAddress mac|366 staIPv4Address ip4
367 wtpMacAddress mac|368 ingressInterfaceType u|369 egressInterfaceType u
370 rtpSequenceNumber u|371 userName str|372 applicationCategoryName str
373 applicationSubCategoryName str|374 applicationGroupName str
375 originalFlowsPresent u|376 originalFlowsInitiated u|377 originalFlowsCompleted u
378 distinctCountOfSourceIPAddress u|379 distinctCountOfDestinationIPAddress u
380 distinctCountOfSourceIPv4Address u|381 distinctCountOfDestinationIPv4Address u
382 distinctCountOfSourceIPv6Address u|383 distinctCountOfDestinationIPv6Address u
384 valueDistributionMethod u|385 rfc3550JitterMilliseconds u
386 rfc3550JitterMicroseconds u|387 rfc3550JitterNanoseconds u|388 dot1qDEI u
389 dot1qCustomerDEI u|390 flowSelectorAlgorithm u|391 flowSelectedOctetDeltaCount u
392 flowSelectedPacketDeltaCount u|393 flowSelectedFlowDeltaCount u
394 selectorIDTotalFlowsObserved u|395 selectorIDTotalFlowsSelected u
396 samplingFlowInterval u|397 samplingFlowSpacing u|398 flowSamplingTimeInterval u
399 flowSamplingTimeSpacing u|400 hashFlowDomain u|401 transportOctetDeltaCount u
402 transportPacketDeltaCount u|403 originalExporterIPv4Address ip4
404 originalExporterIPv6Address ip6|405 originalObservationDomainId u
406 intermediateProcessId u|407 ignoredDataRecordTotalCount u|408 dataLinkFrameType u
409 sectionOffset u|410 sectionExportedOctets u|411 dot1qServiceInstanceTag oct
412 dot1qServiceInstanceId u|413 dot1qServiceInstancePriority u
414 dot1qCustomerSourceMacAddress mac|415 dot1qCustomerDestinationMacAddress mac
417 postLayer2OctetDeltaCount u|418 postMCastLayer2OctetDeltaCount u
420 postLayer2OctetTotalCount u|421 postMCastLayer2OctetTotalCount u
422 minimumLayer2TotalLength u|423 maximumLayer2TotalLength u
424 droppedLayer2OctetDeltaCount u|425 droppedLayer2OctetTotalCount u
426 ignoredLayer2OctetTotalCount u|427 notSentLayer2OctetTotalCount u
428 layer2OctetDeltaSumOfSquares u|429 layer2OctetTotalSumOfSquares u
430 layer2FrameDeltaCount u|431 layer2FrameTotalCount u|432 pseudoWireDestinationIPv4Address ip4
433 ignoredLayer2FrameTotalCount u|434 mibObjectValueInteger i|435 mibObjectValueOctetString oct
436 mibObjectValueOID oct|437 mibObjectValueBits oct|438 mibObjectValueIPAddress ip4
439 mibObjectValueCounter u|440 mibObjectValueGauge u|441 mibObjectValueTimeTicks u
442 mibObjectValueUnsigned u|443 mibObjectValueTable oct|444 mibObjectValueRow oct
445 mibObjectIdentifier oct|446 mibSubIdentifier u|447 mibIndexIndicator u
448 mibCaptureTimeSemantics u|449 mibContextEngineID oct|450 mibContextName str
451 mibObjectName str|452 mibObjectDescription str|453 mibObjectSyntax str
454 mibModuleName str|455 mobileIMSI str|456 mobileMSISDN str|457 httpStatusCode u
458 sourceTransportPortsLimit u|459 httpRequestMethod str|460 httpRequestHost str
461 httpRequestTarget str|462 httpMessageVersion str|463 natInstanceID u
464 internalAddressRealm oct|465 externalAddressRealm oct|466 natQuotaExceededEvent u
467 natThresholdEvent u|468 httpUserAgent str|469 httpContentType str|470 httpReasonPhrase str
471 maxSessionEntries u|472 maxBIBEntries u|473 maxEntriesPerUser u|474 maxSubscribers u
475 maxFragmentsPendingReassembly u|476 addressPoolHighThreshold u
477 addressPoolLowThreshold u|478 addressPortMappingHighThreshold u
479 addressPortMappingLowThreshold u|480 addressPortMappingPerUserHighThreshold u
481 globalAddressMappingHighThreshold u|482 vpnIdentifier oct|483 bgpCommunity u
484 bgpSourceCommunityList oct|485 bgpDestinationCommunityList oct
486 bgpExtendedCommunity oct|487 bgpSourceExtendedCommunityList oct
488 bgpDestinationExtendedCommunityList oct|489 bgpLargeCommunity oct
490 bgpSourceLargeCommunityList oct|491 bgpDestinationLargeCommunityList oct
"""

# NetFlow v9 field types outside the IPFIX registry (Cisco ASA NSEL, Palo Alto, ntop nProbe).
_V9_EXTRA_TEXT = """
33000 ingressAclId oct|33001 egressAclId oct|33002 fwExtEvent u|40000 username str
40001 xlateSrcAddrIPv4 ip4|40002 xlateDstAddrIPv4 ip4|40003 xlateSrcPort u
40004 xlateDstPort u|40005 fwEvent u|56701 panAppId str|56702 panUserId str
57590 ntopL7Proto u|57591 ntopL7ProtoName str|57677 ntopDnsQuery str|57943 ntopHttpHost str
"""

# NetFlow v9 options scope field types (RFC 3954 section 6.1).
_V9_SCOPES = {
    1: "scopeSystem",
    2: "scopeInterface",
    3: "scopeLineCard",
    4: "scopeCache",
    5: "scopeTemplate",
}

# Enterprise-specific elements (IPFIX enterprise bit set): private enterprise number -> id.
_VENDOR_TEXT = """
6871 14 initialTCPFlags u|6871 15 unionTCPFlags u|6871 21 reverseFlowDeltaMilliseconds u
6871 33 silkAppLabel u|6871 40 flowAttributes u|6871 100 expiredFragmentCount u
6871 101 assembledFragmentCount u|6871 102 meanFlowRate u|6871 103 meanPacketRate u
6871 104 flowTableFlushEventCount u|6871 105 flowTablePeakCount u
6876 880 vmwareTenantProtocol u|6876 881 vmwareTenantSourceIPv4 ip4
6876 882 vmwareTenantDestIPv4 ip4|6876 883 vmwareTenantSourceIPv6 ip6
6876 884 vmwareTenantDestIPv6 ip6|6876 886 vmwareTenantSourcePort u
6876 887 vmwareTenantDestPort u|6876 888 vmwareEgressInterfaceAttr u
6876 889 vmwareVxlanExportRole u|6876 890 vmwareIngressInterfaceAttr u
10704 1 barracudaTimestamp u|10704 2 barracudaLogOp u|10704 3 barracudaTrafficType u
10704 4 barracudaFwRule str|10704 5 barracudaServiceName str|10704 6 barracudaReason u
10704 7 barracudaReasonText str|10704 8 barracudaBindIPv4Address ip4
10704 9 barracudaBindTransportPort u|10704 10 barracudaConnIPv4Address ip4
10704 11 barracudaConnTransportPort u|10704 12 barracudaAuditCounter u
2636 137 juniperCommonPropertiesId u
"""


def _table(text: str, width: int) -> dict[tuple[int, ...], tuple[str, str]]:
    out: dict[tuple[int, ...], tuple[str, str]] = {}
    for item in text.replace("\n", "|").split("|"):
        parts = item.split()
        if parts:
            out[tuple(int(p) for p in parts[:width])] = (parts[width], parts[width + 1])
    return out


IANA: dict[int, tuple[str, str]] = {k[0]: v for k, v in _table(_IANA_TEXT, 1).items()}
V9_EXTRA: dict[int, tuple[str, str]] = {k[0]: v for k, v in _table(_V9_EXTRA_TEXT, 1).items()}
VENDOR: dict[tuple[int, int], tuple[str, str]] = {
    (k[0], k[1]): v for k, v in _table(_VENDOR_TEXT, 2).items()
}
ENTERPRISES = {
    6871: "CERT (YAF)",
    6876: "VMware",
    10704: "Barracuda",
    2636: "Juniper",
    REVERSE_PEN: "RFC 5103 reverse",
}


def _reverse(entry: tuple[str, str]) -> tuple[str, str]:
    name, kind = entry
    return "reverse" + name[0].upper() + name[1:], kind


def element(version: int, pen: int, ie: int, scope: bool = False) -> tuple[str, str]:
    """(name, kind) of an element, so the same number means the same thing in v9 and IPFIX."""
    if scope and version == 9:
        return _V9_SCOPES.get(ie, f"scope{ie}"), "?"
    if pen == 0:
        return IANA.get(ie) or V9_EXTRA.get(ie) or (f"ie{ie}", "?")
    if pen == REVERSE_PEN and ie in IANA:
        return _reverse(IANA[ie])
    if pen == CERT_PEN and ie & 0x4000 and (pen, ie & 0x3FFF) in VENDOR:
        return _reverse(VENDOR[(pen, ie & 0x3FFF)])  # YAF marks reverse CERT elements by bit 14
    return VENDOR.get((pen, ie)) or (f"e{pen}_{ie}", "?")


# ---------------------------------------------------------------------------------------------
# Templates


@dataclass(frozen=True)
class FieldSpec:
    """One field of a template: element (``pen`` 0 = IANA/v9, -1 = v9 scope) and its length."""

    ie: int
    pen: int
    length: int
    name: str
    kind: str


def _resolve_kind(kind: str, length: int) -> str:
    """The kind a field is decoded as, given the length the exporter actually uses.

    ``list``: RFC 6313 structured data (basicList, subTemplateList, subTemplateMultiList),
    whose values are read past and counted as skipped, not decoded.
    """
    if length == VARIABLE:
        return kind if kind in ("str", "list") else "oct"
    wanted = {"ip4": (4,), "ip6": (16,), "mac": (6,), "ntp": (8,), "f": (4, 8)}
    if kind in wanted:
        return kind if length in wanted[kind] else "oct"
    if kind in ("u", "i"):
        return kind if 1 <= length <= 8 else "oct"
    if kind == "?":
        return "u" if length in (1, 2, 4, 8) else "oct"
    return kind


@dataclass(eq=False)
class Template:
    """A data or options template; carries the numpy dtype when every field is fixed-length."""

    template_id: int
    fields: tuple[FieldSpec, ...]
    scope_count: int = 0
    options: bool = False
    names: tuple[str, ...] = ()
    record_len: int = 0
    min_len: int = 0
    variable: bool = False
    dtype: np.dtype[Any] | None = None

    def __post_init__(self) -> None:
        seen: Counter[str] = Counter()
        names = []
        for spec in self.fields:
            seen[spec.name] += 1
            names.append(spec.name if seen[spec.name] == 1 else f"{spec.name}_{seen[spec.name]}")
        self.names = tuple(names)
        self.variable = any(f.length == VARIABLE for f in self.fields)
        fixed = sum(f.length for f in self.fields if f.length != VARIABLE)
        self.min_len = fixed + sum(1 for f in self.fields if f.length == VARIABLE)
        self.record_len = 0 if self.variable else fixed
        if not self.variable and self.record_len:
            self.dtype = _record_dtype(self.fields, self.names)

    def same_layout(self, other: Template) -> bool:
        return self.fields == other.fields and self.scope_count == other.scope_count


def _field_format(spec: FieldSpec) -> Any:
    """numpy format of one fixed-length field (big-endian numbers, bytes otherwise)."""
    n = spec.length
    if spec.kind in ("u", "i") and n in (1, 2, 4, 8):
        return f">{spec.kind}{n}"
    if spec.kind == "f":
        return f">f{n}"
    if spec.kind == "ip4":
        return ">u4"
    if spec.kind == "ntp":
        return ">u8"
    return ("u1", (n,))


def _record_dtype(fields: tuple[FieldSpec, ...], names: tuple[str, ...]) -> np.dtype[Any]:
    """A structured dtype for one record; zero-length fields take no bytes and are left out."""
    out_names, formats, offsets = [], [], []
    pos = 0
    for spec, name in zip(fields, names, strict=True):
        if spec.length:
            out_names.append(name)
            formats.append(_field_format(spec))
            offsets.append(pos)
        pos += spec.length
    return np.dtype({"names": out_names, "formats": formats, "offsets": offsets, "itemsize": pos})


# NetFlow v1, v5 and v7 have one fixed record layout each. They are expressed as templates over
# the v9 field numbers, so they share the bulk path and the flows mapping with v9 and IPFIX.
_PAD = 210  # paddingOctets: the layouts' pad and reserved bytes
_V1_LAYOUT = (
    (8, 4), (12, 4), (15, 4), (10, 2), (14, 2), (2, 4), (1, 4), (22, 4), (21, 4), (7, 2),
    (11, 2), (_PAD, 2), (4, 1), (5, 1), (6, 1), (_PAD, 1), (_PAD, 2), (_PAD, 4),
)  # fmt: skip
_V5_LAYOUT = (
    (8, 4), (12, 4), (15, 4), (10, 2), (14, 2), (2, 4), (1, 4), (22, 4), (21, 4), (7, 2),
    (11, 2), (_PAD, 1), (6, 1), (4, 1), (5, 1), (16, 2), (17, 2), (9, 1), (13, 1), (_PAD, 2),
)  # fmt: skip
# v7 (Catalyst switches): "flags" says which fields are valid; router_sc is the address of the
# router the switch shortcut. Neither has an IANA element, so they keep names of their own.
_V7_LAYOUT = (
    (8, 4), (12, 4), (15, 4), (10, 2), (14, 2), (2, 4), (1, 4), (22, 4), (21, 4), (7, 2),
    (11, 2), ("v7ValidFields", 1), (6, 1), (4, 1), (5, 1), (16, 2), (17, 2), (9, 1), (13, 1),
    ("v7InvalidFields", 2), ("v7RouterShortcut", 4),
)  # fmt: skip
_V7_KINDS = {"v7ValidFields": "u", "v7InvalidFields": "u", "v7RouterShortcut": "ip4"}


def _fixed_template(version: int, layout: tuple[tuple[int | str, int], ...]) -> Template:
    specs = []
    for ie, n in layout:
        if isinstance(ie, str):  # a field of this version alone (element id 0 is reserved)
            specs.append(FieldSpec(0, -1, n, ie, _resolve_kind(_V7_KINDS[ie], n)))
        else:
            specs.append(FieldSpec(ie, 0, n, IANA[ie][0], _resolve_kind(IANA[ie][1], n)))
    return Template(version, tuple(specs))


@dataclass(frozen=True)
class FixedFormat:
    """A NetFlow version with one record layout: header, record template, record limit.

    Every header starts with version, count, sysUptime, unix seconds and nanoseconds; ``engine``
    names the header fields holding engine type and id (v5), ``sampling`` the sampling field.
    """

    version: int
    header: struct.Struct
    template: Template
    max_records: int
    engine: tuple[int, int] | None = None
    sampling: int | None = None


FIXED_FORMATS = {
    1: FixedFormat(1, struct.Struct(">HHIII"), _fixed_template(1, _V1_LAYOUT), 24),
    5: FixedFormat(5, struct.Struct(">HHIIIIBBH"), _fixed_template(5, _V5_LAYOUT), 30, (6, 7), 8),
    7: FixedFormat(7, struct.Struct(">HHIIIII"), _fixed_template(7, _V7_LAYOUT), 28),
}
V5_TEMPLATE = FIXED_FORMATS[5].template
V5_MAX_RECORDS = FIXED_FORMATS[5].max_records

ExporterKey = tuple[str, int, int]  # (exporter address, 5 / 9 / 10, engine / source id / domain)


def describe_key(key: ExporterKey) -> str:
    return f"exporter {key[0]} domain {key[2]}"


@dataclass
class TemplateCache:
    """Templates and per-exporter state (sampling, system init time) that outlive one input.

    One cache is shared by every decoder that should see the same exporters' templates: ingest
    feeds one file at a time, and a template sent in one file must decode data in the next.
    """

    templates: dict[ExporterKey, dict[int, Template]] = field(default_factory=dict)
    sampling: dict[ExporterKey, int] = field(default_factory=dict)
    sampler_rates: dict[tuple[ExporterKey, int], int] = field(default_factory=dict)
    system_init_ms: dict[ExporterKey, int] = field(default_factory=dict)

    def get(self, key: ExporterKey, template_id: int) -> Template | None:
        return self.templates.get(key, {}).get(template_id)

    def put(self, key: ExporterKey, template: Template) -> Template:
        """Store a template; a refresh with the same layout keeps the existing object."""
        known = self.templates.setdefault(key, {})
        old = known.get(template.template_id)
        if old is not None and old.same_layout(template) and old.options == template.options:
            return old
        known[template.template_id] = template
        return template

    def withdraw(self, key: ExporterKey, template_id: int | None, options: bool) -> int:
        """IPFIX template withdrawal: one template, or all of one kind when the id is None."""
        known = self.templates.get(key, {})
        gone = [
            t
            for t, tmpl in known.items()
            if (template_id is None and tmpl.options == options) or t == template_id
        ]
        for t in gone:
            del known[t]
        return len(gone)

    def sampling_rate(
        self, exporter: str, domain: int = 0, version: int | None = None
    ) -> int | None:
        """Last sampling rate (1 in N packets) an exporter announced, or None when unknown."""
        for key, rate in self.sampling.items():
            if key[0] == exporter and key[2] == domain and version in (None, key[1]):
                return rate
        return None

    def clear(self) -> None:
        self.templates.clear()
        self.sampling.clear()
        self.sampler_rates.clear()
        self.system_init_ms.clear()


DEFAULT_CACHE = TemplateCache()


# ---------------------------------------------------------------------------------------------
# Decoded output


class Reject(NamedTuple):
    """Bytes that could not be decoded: where, why, and the bytes themselves (hex)."""

    offset: int
    reason: str
    raw: str
    kind: str


class _Chunk(NamedTuple):
    """One data set waiting for bulk decoding, with the message context it needs."""

    key: ExporterKey
    template_id: int
    body: bytes
    export_us: int
    uptime_ms: int
    offset: int
    seq: int


@dataclass
class DecodedBatch:
    """Records of one template with per-record message context.

    ``columns`` (by field name) and ``by_ie`` (by enterprise number and element id) convert a
    field from the raw records the first time it is read.
    """

    version: int
    key: ExporterKey
    template: Template
    columns: Mapping[str, Column]
    by_ie: Mapping[tuple[int, int], Column]
    export_us: npt.NDArray[np.int64]
    uptime_ms: npt.NDArray[np.int64]
    offset: npt.NDArray[np.int64]
    seq: npt.NDArray[np.int64]

    @property
    def num_records(self) -> int:
        return len(self.seq)

    def get(self, ie: int, pen: int = 0) -> Column | None:
        return self.by_ie.get((pen, ie))

    def records(self) -> list[dict[str, Any]]:
        """The records as dicts (for tests and debugging; the flows path stays columnar)."""
        cols = {
            name: (c.tolist() if isinstance(c, np.ndarray) else c.to_pylist())
            for name, c in self.columns.items()
        }
        return [{name: col[i] for name, col in cols.items()} for i in range(self.num_records)]


# ---------------------------------------------------------------------------------------------
# The decoder

_U16 = struct.Struct(">H")
_U16x2 = struct.Struct(">HH")
_U16x3 = struct.Struct(">HHH")
_V9_HEADER = struct.Struct(">HHIIII")
_IPFIX_HEADER = struct.Struct(">HHIII")


class Decoder:
    """Decodes export messages into :class:`DecodedBatch` es, rejects and counters.

    Feed messages with :meth:`feed`, collect output with :meth:`flush` (and :meth:`take_rejects`)
    as often as memory requires, and call :meth:`finish` at the end of an input so that data
    still waiting for a template is rejected rather than forgotten.

    Offsets: a byte at position ``pos`` of a fed message is reported at ``base + step * pos``,
    where ``base`` is the message's offset in its input and ``step`` is 1 (raw message files:
    each set at its own byte) or 0 (captures, datagrams: every row at the packet's offset).
    """

    def __init__(self, cache: TemplateCache | None = None, max_held_sets: int = MAX_HELD_SETS):
        self.cache = DEFAULT_CACHE if cache is None else cache
        self.max_held_sets = max_held_sets
        self.stats: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        # Values read past but not kept, by reason (RFC 6313 lists): counted, never silent.
        self.skipped: Counter[str] = Counter()
        self._rejects: list[Reject] = []
        self._pending: dict[ExporterKey, deque[_Chunk]] = {}
        # Keyed by exporter too: a fixed-format template object is shared by every exporter.
        self._acc: dict[tuple[Template, ExporterKey], tuple[int, list[_Chunk]]] = {}
        self._done: list[DecodedBatch] = []
        self._seq = 0

    # -- bookkeeping ---------------------------------------------------------------------------

    def _reject(
        self,
        offset: int,
        data: bytes,
        kind: str,
        reason: str,
        size: int | None = None,
    ) -> None:
        """Record a reject; ``size`` is the number of input bytes it accounts for."""
        self._rejects.append(Reject(offset, reason, data[:2048].hex(), kind))
        self.reasons[kind] += 1
        self.stats["bytes_rejected"] += len(data) if size is None else size

    def _ok(self, nbytes: int) -> None:
        self.stats["bytes_decoded"] += nbytes

    # -- messages ------------------------------------------------------------------------------

    def feed(
        self, message: bytes, exporter: str, offset: int = 0, set_offsets: bool = True
    ) -> None:
        """Decode one export message from ``exporter``.

        ``offset`` is where the message starts in its input. With ``set_offsets`` records and
        rejects are placed at the byte offset of their set (raw message files); without, every
        row of the message carries ``offset`` itself (the packet's offset in a pcap).
        """
        stats = self.stats
        stats["bytes_in"] += len(message)
        stats["messages"] += 1
        step = 1 if set_offsets else 0
        if len(message) < 4:
            self._reject(
                offset,
                message,
                "truncated message",
                f"message of {len(message)} bytes is too short for a NetFlow/IPFIX header",
            )
            return
        version = message[0] << 8 | message[1]
        if version == 9:
            self._v9(message, exporter, offset, step)
        elif version == 10:
            self._ipfix_stream(message, exporter, offset, step)
        elif version in FIXED_FORMATS:
            self._fixed(FIXED_FORMATS[version], message, exporter, offset, step)
        else:
            self._reject(
                offset,
                message,
                "unsupported version",
                f"version {version} is not NetFlow v1, v5, v7, v9 or IPFIX (10)",
            )

    def _fixed(self, fmt: FixedFormat, msg: bytes, exporter: str, base: int, step: int) -> None:
        """A v1, v5 or v7 message: header, then ``count`` records of the version's layout."""
        n, head, size = len(msg), fmt.header.size, fmt.template.record_len
        name = f"NetFlow v{fmt.version}"
        if n < head:
            self._reject(
                base,
                msg,
                "truncated message",
                f"{name} message of {n} bytes is shorter than its {head}-byte header",
            )
            return
        header = fmt.header.unpack_from(msg)
        count, uptime, secs, nsecs = header[1:5]
        if count > fmt.max_records:
            self._reject(
                base,
                msg,
                "bad length",
                f"{name} header announces {count} records (at most {fmt.max_records} allowed)",
            )
            return
        need = head + size * count
        if n < need:
            # Keep the whole records that did arrive; only the cut tail is rejected.
            whole = head + size * ((n - head) // size)
            self._reject(
                base + step * whole,
                msg[whole:],
                "truncated message",
                f"truncated {name} message: {count} records need {need} bytes, only {n} present",
            )
            msg, n, count = msg[:whole], whole, (whole - head) // size
            need = whole
        domain = header[fmt.engine[0]] << 8 | header[fmt.engine[1]] if fmt.engine else 0
        key = (exporter, fmt.version, domain)
        if fmt.sampling is not None and (header[fmt.sampling] & 0x3FFF) > 1:
            self.cache.sampling[key] = header[fmt.sampling] & 0x3FFF
        self._ok(head)
        if need < n:
            self._reject(
                base + step * need,
                msg[need:],
                "trailing bytes",
                f"{n - need} bytes after the {count} records the {name} header announces",
            )
        if count:
            self._seq += 1
            export_us = secs * 1_000_000 + nsecs // 1000
            chunk = _Chunk(
                key, fmt.version, msg[head:need], export_us, uptime, base + step * head, self._seq
            )
            self._accumulate(fmt.template, fmt.version, chunk)

    def _v9(self, msg: bytes, exporter: str, base: int, step: int) -> None:
        n = len(msg)
        if n < _V9_HEADER.size:
            self._reject(
                base,
                msg,
                "truncated message",
                f"NetFlow v9 message of {n} bytes is shorter than its 20-byte header",
            )
            return
        _, _, uptime, secs, _, source_id = _V9_HEADER.unpack_from(msg)
        self.stats["bytes_decoded"] += 20
        self._sets(msg, 20, n, (exporter, 9, source_id), secs * 1_000_000, uptime, base, step, 0)

    def _ipfix_stream(self, msg: bytes, exporter: str, base: int, step: int) -> None:
        """IPFIX messages stored back to back (a file, a stream) all decode, in place."""
        pos, n = 0, len(msg)
        while True:
            used = self._ipfix(msg, pos, exporter, base, step)
            pos += used
            if pos >= n:
                return
            if n - pos < 16 or msg[pos : pos + 2] != b"\x00\x0a" or used == 0:
                self._reject(
                    base + step * pos,
                    msg[pos:],
                    "trailing bytes",
                    f"{n - pos} bytes after the {used}-byte IPFIX message",
                )
                return

    def _ipfix(self, msg: bytes, start: int, exporter: str, base: int, step: int) -> int:
        """Decode the IPFIX message at ``start``; returns the bytes it took."""
        n = len(msg) - start
        if n < _IPFIX_HEADER.size:
            self._reject(
                base + step * start,
                msg[start:],
                "truncated message",
                f"IPFIX message of {n} bytes is shorter than its 16-byte header",
            )
            return n
        _, length, export_time, _, domain = _IPFIX_HEADER.unpack_from(msg, start)
        if length < 16:
            self._reject(
                base + step * start,
                msg[start:],
                "bad length",
                f"IPFIX header says the message is {length} bytes",
            )
            return n
        self.stats["bytes_decoded"] += 16
        used = min(length, n)  # a message cut short still holds whole sets before the cut
        key = (exporter, 10, domain)
        self._sets(msg, start + 16, start + used, key, export_time * 1_000_000, -1, base, step,
                   start)  # fmt: skip
        return int(used)

    def _sets(
        self,
        msg: bytes,
        pos: int,
        end: int,
        key: ExporterKey,
        export_us: int,
        uptime: int,
        base: int,
        step: int,
        origin: int,
    ) -> None:
        """Walk the (flow)sets of one message (from ``origin`` in ``msg``) up to ``end``.

        The hot loop of the decoder: per set only the header is read and the body is queued
        for bulk decoding, so Python does a few operations per set, none per record.
        """
        version = key[1]
        template_set, options_set = (0, 1) if version == 9 else (2, 3)
        templates = self.cache.templates.get(key, {})
        acc = self._acc
        while pos < end:
            if end - pos < 4:
                self._padding(msg[pos:end])
                return
            set_id, length = _U16x2.unpack_from(msg, pos)
            if length < 4 or pos + length > end:
                self._bad_set(msg, pos, end, key, set_id, (export_us, uptime, length),
                              base, step, origin)  # fmt: skip
                return
            if set_id >= 256:
                # A data set's 4 header bytes are accounted when the set is decoded or rejected.
                self._seq += 1
                chunk = _Chunk(key, set_id, msg[pos + 4 : pos + length], export_us, uptime,
                               base + step * pos, self._seq)  # fmt: skip
                template = templates.get(set_id)
                if template is None:
                    self._hold(chunk)
                elif template.options:
                    self._accumulate(template, version, chunk)
                else:  # _accumulate, inlined: this runs once per data set
                    queued = acc.get((template, key))
                    if queued is None:
                        acc[(template, key)] = (version, [chunk])
                    else:
                        queued[1].append(chunk)
            elif set_id in (template_set, options_set):
                self.stats["bytes_decoded"] += 4
                self._templates(msg[pos + 4 : pos + length], key, version, base + step * pos,
                                set_id == options_set, set_id)  # fmt: skip
                templates = self.cache.templates.get(key, {})
            else:
                self._reject(
                    base + step * pos,
                    msg[pos : pos + length],
                    "reserved set id",
                    f"set id {set_id} at byte {pos - origin} is reserved",
                )
            pos += length

    def _bad_set(
        self,
        msg: bytes,
        pos: int,
        end: int,
        key: ExporterKey,
        set_id: int,
        context: tuple[int, int, int],
        base: int,
        step: int,
        origin: int,
    ) -> None:
        """A set whose length does not fit the message: padding, a cut data set, or a reject."""
        if not msg[pos:end].strip(b"\0"):
            self._padding(msg[pos:end])  # zero-filled tail (fixed-size export buffers)
            return
        length = context[2]
        if length >= 4 and self._cut_data_set(msg, pos, end, key, set_id, context, base, step,
                                              origin):  # fmt: skip
            return
        self._reject(
            base + step * pos,
            msg[pos:end],
            "bad length",
            f"set {set_id} at byte {pos - origin} has length {length}, "
            f"{end - pos} bytes remain in the message",
        )

    def _cut_data_set(
        self,
        msg: bytes,
        pos: int,
        end: int,
        key: ExporterKey,
        set_id: int,
        context: tuple[int, int, int],
        base: int,
        step: int,
        origin: int,
    ) -> bool:
        """A data set cut by the end of the message: decode its whole records, reject the rest.

        Only for a known fixed-length template with at least one whole record; returns False
        when that does not apply. ``context`` is (export time µs, sysUptime ms, set length).
        """
        export_us, uptime, length = context
        template = self.cache.get(key, set_id)
        if template is None or template.variable or not template.record_len:
            return False
        whole = (end - pos - 4) // template.record_len * template.record_len
        if not whole:
            return False
        cut = pos + 4 + whole
        self._reject(
            base + step * cut,
            msg[cut:end],
            "bad length",
            f"set {set_id} at byte {pos - origin} has length {length}, {end - pos} bytes remain "
            f"in the message: {whole // template.record_len} whole records kept",
        )
        self._seq += 1
        chunk = _Chunk(key, set_id, msg[pos + 4 : cut], export_us, uptime, base + step * pos,
                       self._seq)  # fmt: skip
        self._accumulate(template, key[1], chunk)
        return True

    def _padding(self, data: bytes) -> None:
        """Bytes too short to hold anything: padding (RFC 3954 5.3, RFC 7011 3.3.1).

        Padding "SHOULD" be zero, yet exporters in the corpus (nProbe, softflowd) leave junk
        there; it cannot hold a record either way, so it counts as decoded, with its own counter.
        """
        self._ok(len(data))
        self.stats["padding_bytes"] += len(data)
        if data.strip(b"\0"):
            self.stats["padding_nonzero_bytes"] += len(data)

    # -- templates -----------------------------------------------------------------------------

    def _templates(
        self, body: bytes, key: ExporterKey, version: int, offset: int, options: bool, set_id: int
    ) -> None:
        """Parse a template or options template set and release data held for it."""
        p, n = 0, len(body)
        while n - p >= 4:
            start = p
            if version == 9 and options:
                if n - p < 6:
                    break
                tid, scope_len, opt_len = _U16x3.unpack_from(body, p)
                if tid == 0 and scope_len == 0 and opt_len == 0:
                    break
                if scope_len % 4 or opt_len % 4 or p + 6 + scope_len + opt_len > n:
                    self._reject(
                        offset,
                        body[p:],
                        "malformed template",
                        f"options template {tid}: scope length {scope_len} / option "
                        f"length {opt_len} do not fit the {n}-byte flowset",
                    )
                    return
                scope_count, count = scope_len // 4, (scope_len + opt_len) // 4
                raw_fields = [(_U16x2.unpack_from(body, p + 6 + 4 * i), 0) for i in range(count)]
                p += 6 + scope_len + opt_len
            else:
                tid, count = _U16x2.unpack_from(body, p)
                scope_count = 0
                if count == 0:
                    if tid == 0:
                        break
                    p += 4
                    self._ok(4)
                    if version == 10:
                        which = None if tid == set_id else tid
                        gone = self.cache.withdraw(key, which, options)
                        self.stats["templates_withdrawn"] += gone
                    continue
                p += 4
                if version == 10 and options:
                    if n - p < 2:
                        self._reject(
                            offset,
                            body[start:],
                            "malformed template",
                            f"options template {tid} is cut before its scope count",
                        )
                        return
                    scope_count = _U16.unpack_from(body, p)[0]
                    p += 2
                raw_fields = []
                for _ in range(count):
                    if n - p < 4:
                        break
                    ie, length = _U16x2.unpack_from(body, p)
                    p += 4
                    pen = 0
                    if version == 10 and ie & 0x8000:
                        if n - p < 4:
                            p = n + 1
                            break
                        pen = struct.unpack_from(">I", body, p)[0]
                        ie &= 0x7FFF
                        p += 4
                    raw_fields.append(((ie, length), pen))
                if len(raw_fields) < count or p > n:
                    self._reject(
                        offset,
                        body[start:],
                        "malformed template",
                        f"template {tid} announces {count} fields but the set ends "
                        f"after {len(raw_fields)}",
                    )
                    return
                if options and (scope_count == 0 or scope_count > count):
                    self._reject(
                        offset,
                        body[start:p],
                        "malformed template",
                        f"options template {tid} has scope count {scope_count} of {count} fields",
                    )
                    continue
            if tid < 256:
                self._reject(
                    offset, body[start:p], "malformed template", f"template id {tid} is below 256"
                )
                continue
            specs = []
            for i, ((ie, length), pen) in enumerate(raw_fields):
                is_scope = options and i < scope_count
                name, kind = element(
                    version, -1 if is_scope and version == 9 else pen, ie, scope=is_scope
                )
                if is_scope and version == 9:
                    pen = -1
                specs.append(FieldSpec(ie, pen, length, name, _resolve_kind(kind, length)))
            self._ok(p - start)
            self.stats["templates"] += 1
            template = self.cache.put(key, Template(tid, tuple(specs), scope_count, options))
            self._release(key, template, version)
        if p < n:
            self._padding(body[p:])

    # -- data ----------------------------------------------------------------------------------

    def _hold(self, chunk: _Chunk) -> None:
        """Keep a data set whose template has not arrived yet (bounded per exporter)."""
        queue = self._pending.setdefault(chunk.key, deque())
        queue.append(chunk)
        self.stats["sets_held"] += 1
        if len(queue) > self.max_held_sets:
            old = queue.popleft()
            self._reject(
                old.offset,
                old.body,
                "held-set limit",
                f"more than {self.max_held_sets} data sets waiting for templates from "
                f"{describe_key(old.key)}; dropped one for template {old.template_id}",
                len(old.body) + 4,
            )

    def _release(self, key: ExporterKey, template: Template, version: int) -> None:
        queue = self._pending.get(key)
        if not queue:
            return
        ready = [c for c in queue if c.template_id == template.template_id]
        if not ready:
            return
        self._pending[key] = deque(c for c in queue if c.template_id != template.template_id)
        for chunk in ready:
            self._accumulate(template, version, chunk)

    def _accumulate(self, template: Template, version: int, chunk: _Chunk) -> None:
        if template.options:
            # Options data (sampling rate, system init time) decodes at once: later data needs it.
            batch = self._decode(template, version, chunk.key, [chunk])
            if batch is not None:
                self._apply_options(batch)
                self._done.append(batch)
            return
        entry = self._acc.get((template, chunk.key))
        if entry is None:
            self._acc[(template, chunk.key)] = (version, [chunk])
        else:
            entry[1].append(chunk)

    def flush(self) -> list[DecodedBatch]:
        """Decode everything accumulated so far; batches of flow and options records."""
        out = self._done
        self._done = []
        acc, self._acc = self._acc, {}
        for (template, key), (version, chunks) in acc.items():
            batch = self._decode(template, version, key, chunks)
            if batch is not None:
                out.append(batch)
        return out

    def take_rejects(self) -> list[Reject]:
        out, self._rejects = self._rejects, []
        return out

    def take_skipped(self) -> dict[str, int]:
        """Counts of values skipped since the last call, by reason (for ingest summaries)."""
        out, self.skipped = dict(self.skipped), Counter()
        return out

    def finish(self) -> None:
        """End of input: data still waiting for its template becomes rejects."""
        for key, queue in self._pending.items():
            for chunk in queue:
                self._reject(
                    chunk.offset,
                    chunk.body,
                    "no template",
                    f"no template {chunk.template_id} from {describe_key(key)}",
                    len(chunk.body) + 4,
                )
        self._pending.clear()

    @property
    def held_sets(self) -> int:
        return sum(len(q) for q in self._pending.values())

    def _decode(
        self, template: Template, version: int, key: ExporterKey, chunks: list[_Chunk]
    ) -> DecodedBatch | None:
        """All sets of one fixed-length template: one ``np.frombuffer`` over their bodies."""
        if template.variable:
            return self._decode_variable(template, version, key, chunks)
        size = template.record_len
        if size == 0 or template.dtype is None:
            for c in chunks:
                self._reject(
                    c.offset,
                    c.body,
                    "malformed template",
                    f"template {template.template_id} from {describe_key(key)} has "
                    "zero-length records",
                    len(c.body) + 4,
                )
            return None
        lengths = np.fromiter((len(c.body) for c in chunks), np.int64, len(chunks))
        counts = lengths // size
        used = counts * size
        header = 0 if version in FIXED_FORMATS else 4
        self.stats["bytes_decoded"] += header * len(chunks) + int(used.sum())
        if (used == lengths).all():
            body = b"".join([c.body for c in chunks])
        else:  # sets padded to a 4-byte boundary: the tails are padding
            for i in np.flatnonzero(used < lengths).tolist():
                self._padding(chunks[i].body[int(used[i]) :])
            body = b"".join([c.body[: int(u)] for c, u in zip(chunks, used.tolist(), strict=True)])
            if not (counts > 0).all():
                chunks = [c for c, k in zip(chunks, counts.tolist(), strict=True) if k]
                counts = counts[counts > 0]
        if not chunks:
            return None
        records = np.frombuffer(body, dtype=template.dtype)
        specs = {
            name: spec
            for spec, name in zip(template.fields, template.names, strict=True)
            if spec.length and spec.kind != "list"
        }
        return self._batch(template, version, key, chunks, counts, Columns(specs, records=records))

    def _decode_variable(
        self, template: Template, version: int, key: ExporterKey, chunks: list[_Chunk]
    ) -> DecodedBatch | None:
        """Per-record path for templates with variable-length (IPFIX) fields."""
        values: list[list[bytes]] = [[] for _ in template.fields]
        counts, kept = [], []
        for c in chunks:
            body, p, n, count = c.body, 0, len(c.body), 0
            self._ok(4)
            while n - p >= template.min_len:
                start, row = p, []
                for spec in template.fields:
                    length = spec.length
                    if length == VARIABLE:
                        if p >= n:
                            break
                        length = body[p]
                        p += 1
                        if length == 255:
                            if n - p < 2:
                                p = n + 1
                                break
                            length = _U16.unpack_from(body, p)[0]
                            p += 2
                    if p + length > n:
                        p = n + 1
                        break
                    row.append(body[p : p + length])
                    p += length
                if len(row) < len(template.fields) or p > n:
                    p = start
                    break
                for i, v in enumerate(row):
                    values[i].append(v)
                count += 1
            self._ok(p)
            if p < n:
                if n - p < template.min_len:
                    self._padding(body[p:])
                else:
                    self._reject(
                        c.offset,
                        body[p:],
                        "record overrun",
                        f"record of template {template.template_id} at byte {p} of the "
                        "set runs past the set end",
                    )
            if count:
                counts.append(count)
                kept.append(c)
        if not kept:
            return None
        fixed: dict[str, npt.NDArray[Any]] = {}
        var: dict[str, list[bytes]] = {}
        specs: dict[str, FieldSpec] = {}
        for spec, name, vals in zip(template.fields, template.names, values, strict=True):
            if spec.kind == "list":
                continue
            if spec.length == VARIABLE:
                var[name] = vals
            elif spec.length:
                single = np.dtype([(name, _field_format(spec))])
                fixed[name] = np.frombuffer(b"".join(vals), dtype=single)[name]
            else:
                continue
            specs[name] = spec
        columns = Columns(specs, fixed=fixed, variable=var)
        return self._batch(template, version, key, kept, np.asarray(counts, np.int64), columns)

    def _batch(
        self,
        template: Template,
        version: int,
        key: ExporterKey,
        chunks: list[_Chunk],
        counts: npt.NDArray[np.int64],
        columns: Columns,
    ) -> DecodedBatch:
        """A batch over ``columns`` (converted on first use) with per-record message context."""

        def rep(values: Iterable[int]) -> npt.NDArray[np.int64]:
            return np.repeat(np.fromiter(values, np.int64, len(chunks)), counts)

        names: dict[tuple[int, int], str] = {}
        for spec, name in zip(template.fields, template.names, strict=True):
            if name in columns:
                names.setdefault((spec.pen, spec.ie), name)
        kind = "option_records" if template.options else "flow_records"
        total = int(counts.sum())
        self.stats[kind] += total
        for spec in template.fields:
            if spec.kind == "list" and spec.length:
                self.skipped[f"{spec.name} values not decoded (RFC 6313 structured data)"] += total
        return DecodedBatch(
            version,
            key,
            template,
            columns,
            ElementColumns(columns, names),
            rep(c.export_us for c in chunks),
            rep(c.uptime_ms for c in chunks),
            rep(c.offset for c in chunks),
            rep(c.seq for c in chunks),
        )

    def _apply_options(self, batch: DecodedBatch) -> None:
        """Remember what options records say about the exporter: sampling, system init time."""
        key = batch.key

        def column(ie: int) -> list[int] | None:
            col = batch.get(ie)
            if isinstance(col, np.ndarray) and col.dtype.kind in "ui":
                return [int(v) for v in col.tolist()]
            return None

        cols = {ie: column(ie) for ie in (34, 50, 305, 306, 309, 310, 160, 48, 302)}
        for i in range(batch.num_records):
            v = {ie: (c[i] if c is not None else None) for ie, c in cols.items()}
            rate = sampling_rate_of(v)
            if v[160]:
                self.cache.system_init_ms[key] = v[160]
            if rate:
                self.cache.sampling[key] = rate
                sampler = v[48] if v[48] is not None else v[302]
                if sampler is not None:
                    self.cache.sampler_rates[(key, sampler)] = rate


def sampling_rate_of(v: dict[int, int | None]) -> int | None:
    """1-in-N packet sampling rate from the sampling elements of one options record.

    samplingInterval (34) / samplerRandomInterval (50) are N already; RFC 5477 n-out-of-N
    (samplingSize 309 of samplingPopulation 310, Cisco's random sampler) and count-based
    (samplingPacketInterval 305 selected, samplingPacketSpace 306 skipped) are converted.
    """
    for ie in (34, 50):
        if v.get(ie):
            return v[ie]
    size, population = v.get(309), v.get(310)
    if size and population:
        return max(1, population // size)
    interval, space = v.get(305), v.get(306)
    if interval and space is not None:
        return (interval + space) // interval
    if interval and interval > 1:
        return interval
    return None


# ---------------------------------------------------------------------------------------------
# Mapping onto flows

PROTOCOLS = {
    1: "icmp",
    2: "igmp",
    6: "tcp",
    17: "udp",
    41: "ipv6",
    47: "gre",
    50: "esp",
    51: "ah",
    58: "ipv6-icmp",
    89: "ospf",
    103: "pim",
    112: "vrrp",
    132: "sctp",
}
_PROTO_NAMES = pa.array([PROTOCOLS.get(i, str(i)) for i in range(256)], pa.string())
_TCP_FLAG_NAMES = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR")
_TCP_FLAGS = pa.array(
    ["|".join(n for b, n in enumerate(_TCP_FLAG_NAMES) if i >> b & 1) for i in range(256)],
    pa.string(),
)
TS_UNIX = pa.timestamp("us", tz="UTC")
FIREWALL_DENY = {3}
_ACTIONS = pa.array(["unknown", "allow", "deny"], pa.string())
FIREWALL_ALLOW = {1, 2, 5}

# Columns beyond the flows schema; the sources keep them when the schema declares them.
EXTRA_COLUMNS = (
    "nat_src_ip",
    "nat_src_port",
    "nat_dst_ip",
    "nat_dst_port",
    "sampling_rate",
    "netflow_version",
)

FLOW_COLUMNS = (
    "ts_start",
    "ts_end",
    "duration_s",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "protocol",
    "service",
    "src_bytes",
    "dst_bytes",
    "src_packets",
    "dst_packets",
    "conn_state",
    "action",
    "rule",
    "exporter",
    "flow_uid",
    "source_offset",
    *EXTRA_COLUMNS,
)
FLOWS_SCHEMA = pa.schema(
    [
        ("ts_start", TS_UNIX),
        ("ts_end", TS_UNIX),
        ("duration_s", pa.float64()),
        ("src_ip", pa.string()),
        ("src_port", pa.int32()),
        ("dst_ip", pa.string()),
        ("dst_port", pa.int32()),
        ("protocol", pa.string()),
        ("service", pa.string()),
        ("src_bytes", pa.int64()),
        ("dst_bytes", pa.int64()),
        ("src_packets", pa.int64()),
        ("dst_packets", pa.int64()),
        ("conn_state", pa.string()),
        ("action", pa.string()),
        ("rule", pa.string()),
        ("exporter", pa.string()),
        ("flow_uid", pa.string()),
        ("source_offset", pa.int64()),
        ("nat_src_ip", pa.string()),
        ("nat_src_port", pa.int32()),
        ("nat_dst_ip", pa.string()),
        ("nat_dst_port", pa.int32()),
        ("sampling_rate", pa.int64()),
        ("netflow_version", pa.int8()),
    ]
)


def _num(batch: DecodedBatch, *ids: int | tuple[int, int]) -> npt.NDArray[Any] | None:
    """The first of several elements present as a number column."""
    for ident in ids:
        pen, ie = ident if isinstance(ident, tuple) else (0, ident)
        col = batch.by_ie.get((pen, ie))
        if isinstance(col, np.ndarray):
            return col
    return None


def _txt(batch: DecodedBatch, *ids: int | tuple[int, int]) -> pa.Array | None:
    for ident in ids:
        pen, ie = ident if isinstance(ident, tuple) else (0, ident)
        col = batch.by_ie.get((pen, ie))
        if isinstance(col, pa.Array):
            return col
    return None


class _Times:
    """Coalesces candidate times (µs since the epoch) in priority order, per record."""

    def __init__(self, n: int):
        self.value = np.zeros(n, np.int64)
        self.known = np.zeros(n, bool)

    def offer(
        self, value: npt.NDArray[Any] | None, valid: npt.NDArray[np.bool_] | None = None
    ) -> None:
        if value is None:
            return
        take = ~self.known if valid is None else (~self.known & valid)
        self.value[take] = value[take]
        self.known |= take


def flow_times(
    batch: DecodedBatch, cache: TemplateCache
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(start, end) in µs from whichever time representation the template carries."""
    n = batch.num_records
    export = batch.export_us

    def absolute(ms_ie: int, s_ie: int, ntp_ies: tuple[int, int]) -> list[npt.NDArray[Any] | None]:
        out: list[npt.NDArray[Any] | None] = []
        for ie in ntp_ies:
            out.append(_num(batch, ie))
        ms = _num(batch, ms_ie)
        out.append(None if ms is None else ms.astype(np.int64) * 1000)
        secs = _num(batch, s_ie)
        out.append(None if secs is None else secs.astype(np.int64) * 1_000_000)
        return out

    def uptime(ie: int) -> tuple[npt.NDArray[Any] | None, npt.NDArray[np.bool_] | None]:
        v = _num(batch, ie)
        if v is None:
            return None, None
        if batch.version != 10:
            # sysUptime-relative ms: signed 32-bit difference handles the 49.7-day wrap.
            diff = ((batch.uptime_ms - v.astype(np.int64)) & 0xFFFFFFFF).astype(np.uint32)
            return export - diff.view(np.int32).astype(np.int64) * 1000, None
        init = _num(batch, 160)
        if init is not None:
            return (init.astype(np.int64) + v.astype(np.int64)) * 1000, None
        known = cache.system_init_ms.get(batch.key)
        if known is not None:
            return (known + v.astype(np.int64)) * 1000, None
        return None, None

    start, end = _Times(n), _Times(n)
    for cand in absolute(152, 150, (156, 154)):
        start.offer(cand)
    for cand in absolute(153, 151, (157, 155)):
        end.offer(cand)
    delta = _num(batch, 158)
    if delta is not None:
        start.offer(export - delta.astype(np.int64))
    delta = _num(batch, 159)
    if delta is not None:
        end.offer(export - delta.astype(np.int64))
    start.offer(uptime(22)[0])
    end.offer(uptime(21)[0])
    dur_ms, dur_us = _num(batch, 161), _num(batch, 162)
    duration = (
        dur_us.astype(np.int64)
        if dur_us is not None
        else dur_ms.astype(np.int64) * 1000
        if dur_ms is not None
        else None
    )
    up_start, up_end = _num(batch, 22), _num(batch, 21)
    if duration is None and up_start is not None and up_end is not None:
        # Uptime-relative times without a known boot time still give the duration.
        duration = (up_end.astype(np.int64) - up_start.astype(np.int64)) * 1000
    if duration is not None:
        end.offer(start.value + duration, start.known)
        start.offer(end.value - duration, end.known)
    # Firewall event records (NSEL) carry only the event time; then the export time.
    for ie, scale in ((325, 0), (324, 0), (323, 1000), (322, 1_000_000)):
        v = _num(batch, ie)
        if v is not None:
            obs = v.astype(np.int64) * scale if scale else v.astype(np.int64)
            end.offer(obs)
            start.offer(obs)
    start.offer(end.value, end.known)
    if duration is not None:
        # Only a duration: the flow ended when it was exported.
        end.offer(export)
        start.offer(end.value - duration)
    start.offer(export)
    end.offer(start.value)
    return start.value, end.value


def _port(col: npt.NDArray[Any] | None, n: int) -> pa.Array:
    if col is None:
        return pa.nulls(n, pa.int32())
    return pa.array(col.astype(np.int32))


def _count(col: npt.NDArray[Any] | None, n: int) -> pa.Array:
    if col is None:
        return pa.nulls(n, pa.int64())
    return pa.array(col.astype(np.int64))


def _coalesce_text(n: int, *cols: pa.Array | None) -> pa.Array:
    present = [c for c in cols if c is not None]
    if not present:
        return pa.nulls(n, pa.string())
    return present[0] if len(present) == 1 else pc.coalesce(*present)


def to_flows(batch: DecodedBatch, cache: TemplateCache | None = None) -> pa.Table:
    """``flows`` rows (plus NAT and sampling columns) for a batch of flow records."""
    cache = DEFAULT_CACHE if cache is None else cache
    n = batch.num_records
    start, end = flow_times(batch, cache)
    proto_num = _num(batch, 4)
    protocol = (
        pa.nulls(n, pa.string())
        if proto_num is None
        else _PROTO_NAMES.take(pa.array((proto_num & 0xFF).astype(np.int64)))
    )
    src_port, dst_port = _num(batch, 7, 182, 180), _num(batch, 11, 183, 181)
    if proto_num is not None:
        icmp = (proto_num == 1) | (proto_num == 58)
        if icmp.any():
            icmp_type, icmp_code = _num(batch, 176, 178), _num(batch, 177, 179)
            type_code = _num(batch, 32, 139)
            if type_code is None and icmp_type is None and dst_port is not None:
                type_code = dst_port  # Cisco v5/v9 convention: type * 256 + code in dst port
            if type_code is not None:
                icmp_type, icmp_code = type_code >> 8 & 0xFF, type_code & 0xFF
            if icmp_type is not None and icmp_code is not None:
                base_src = np.zeros(n, np.uint64) if src_port is None else src_port
                base_dst = np.zeros(n, np.uint64) if dst_port is None else dst_port
                src_port = np.where(icmp, icmp_type, base_src)
                dst_port = np.where(icmp, icmp_code, base_dst)
    src_bytes = _num(batch, 1, 85, 231, 23, 352)
    src_packets = _num(batch, 2, 86, 298, 24)
    if batch.version in FIXED_FORMATS:
        dst_bytes = dst_packets = None
    else:
        dst_bytes = _num(batch, 232, (REVERSE_PEN, 1), (REVERSE_PEN, 85))
        dst_packets = _num(batch, 299, (REVERSE_PEN, 2), (REVERSE_PEN, 86))
    flags = _num(batch, 6)
    conn_state = (
        pa.nulls(n, pa.string())
        if flags is None
        else _TCP_FLAGS.take(pa.array((flags & 0xFF).astype(np.int64)))
    )
    if flags is not None and proto_num is not None:
        conn_state = pc.if_else(pa.array(proto_num == 6), conn_state, pa.scalar(None, pa.string()))
    event, ext = _num(batch, 233, 40005), _num(batch, 33002)
    action_code = np.zeros(n, np.int8)  # index into _ACTIONS
    if event is not None:
        action_code[np.isin(event, list(FIREWALL_ALLOW))] = 1
        action_code[np.isin(event, list(FIREWALL_DENY))] = 2
    if ext is not None:
        action_code[(ext >= 1001) & (ext <= 1004)] = 2
    rule = _rule(batch, n)
    service = _coalesce_text(n, _txt(batch, 56701, 96, 57591))
    flow_id = _num(batch, 148)
    flow_uid = (
        pa.nulls(n, pa.string()) if flow_id is None else pc.cast(pa.array(flow_id), pa.string())
    )
    src_ip = _coalesce_text(n, _txt(batch, 8), _txt(batch, 27))
    dst_ip = _coalesce_text(n, _txt(batch, 12), _txt(batch, 28))
    key = batch.key
    exporter = key[0] if key[2] == 0 or batch.version in FIXED_FORMATS else f"{key[0]}#{key[2]}"
    sampling = _sampling(batch, cache, n)
    table = pa.table(
        {
            "ts_start": pa.array(start, pa.int64()).cast(TS_UNIX),
            "ts_end": pa.array(end, pa.int64()).cast(TS_UNIX),
            "duration_s": pa.array((end - start) / 1e6, pa.float64()),
            "src_ip": src_ip,
            "src_port": _port(src_port, n),
            "dst_ip": dst_ip,
            "dst_port": _port(dst_port, n),
            "protocol": protocol,
            "service": service,
            "src_bytes": _count(src_bytes, n),
            "dst_bytes": _count(dst_bytes, n),
            "src_packets": _count(src_packets, n),
            "dst_packets": _count(dst_packets, n),
            "conn_state": conn_state,
            "action": _ACTIONS.take(pa.array(action_code)),
            "rule": rule,
            "exporter": pa.repeat(pa.scalar(exporter, pa.string()), n),
            "flow_uid": flow_uid,
            "source_offset": pa.array(batch.offset, pa.int64()),
            "nat_src_ip": _coalesce_text(n, _txt(batch, 225, 281, 40001)),
            "nat_src_port": _port(_num(batch, 227, 40003), n),
            "nat_dst_ip": _coalesce_text(n, _txt(batch, 226, 282, 40002)),
            "nat_dst_port": _port(_num(batch, 228, 40004), n),
            "sampling_rate": sampling,
            "netflow_version": pa.array(np.full(n, batch.version, np.int8)),
        }
    )
    return table.cast(FLOWS_SCHEMA)


def _rule(batch: DecodedBatch, n: int) -> pa.Array:
    """The firewall rule: ASA ingress ACL id (hex words), Barracuda rule name."""
    acl = _txt(batch, 33000)
    if acl is not None:
        words = [
            None
            if not v or not v.strip("0")
            else "-".join(v[i : i + 8] for i in range(0, len(v), 8))
            for v in acl.to_pylist()
        ]
        return pa.array(words, pa.string())
    name = _txt(batch, (10704, 4))
    if name is not None:
        return pc.if_else(pc.equal(name, ""), None, name)
    return pa.nulls(n, pa.string())


def _sampling(batch: DecodedBatch, cache: TemplateCache, n: int) -> pa.Array:
    """1-in-N sampling rate per record: in the record, by sampler id, or the exporter's last."""
    own = _num(batch, 34, 50)
    if own is not None:
        return pa.array(np.where(own > 0, own, 1).astype(np.int64))
    sampler = _num(batch, 48, 302)
    default = cache.sampling.get(batch.key)
    if sampler is not None and any(k == batch.key for k, _ in cache.sampler_rates):
        rates = [cache.sampler_rates.get((batch.key, int(s)), default) for s in sampler.tolist()]
        return pa.array(rates, pa.int64())
    if default is None:
        return pa.nulls(n, pa.int64())
    return pa.array(np.full(n, default, np.int64))


def batches_to_flows(batches: list[DecodedBatch], cache: TemplateCache | None = None) -> pa.Table:
    """Flow rows of many batches, in the order their records arrived."""
    flows = [b for b in batches if not b.template.options and b.num_records]
    if not flows:
        return FLOWS_SCHEMA.empty_table()
    tables = [to_flows(b, cache) for b in flows]
    table = pa.concat_tables(tables)
    seq = np.concatenate([b.seq for b in flows])
    if len(flows) > 1:
        order = np.argsort(seq, kind="stable")
        table = table.take(pa.array(order))
    return table
