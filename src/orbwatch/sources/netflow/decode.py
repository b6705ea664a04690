"""Decoding NetFlow v5, NetFlow v9 (RFC 3954) and IPFIX (RFC 7011/7012) export messages.

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
  variable-length fields (IPFIX length 255/0xFFFF) go through a per-record path.
* **Nothing is lost silently.** Every byte fed is either decoded (headers, templates, records,
  padding) or ends in a :class:`Reject` with its offset, a reason and the raw bytes as hex;
  :attr:`Decoder.stats` keeps the byte accounting and counters per reason. Data that arrives
  before its template is held (bounded) and decoded when the template comes; what is still held
  at :meth:`Decoder.finish` is rejected with "no template N from exporter X domain Y".
"""

from __future__ import annotations

import ipaddress
import struct
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01
VARIABLE = 0xFFFF
MAX_HELD_SETS = 10_000
V5_MAX_RECORDS = 30
REVERSE_PEN = 29305  # RFC 5103 bidirectional flows: reverse direction of any IANA element
CERT_PEN = 6871

# ---------------------------------------------------------------------------------------------
# Information elements. Kinds: u unsigned, i signed, f float, ip4/ip6 addresses, mac, str text,
# oct octets (hex), ntp NTP timestamp (micro/nanosecond precision), ? = by length.
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
291 basicList oct|292 subTemplateList oct|293 subTemplateMultiList oct
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
    """The kind a field is decoded as, given the length the exporter actually uses."""
    if length == VARIABLE:
        return "str" if kind == "str" else "oct"
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


# v5 records as a template over the v9 field numbers, so v5 shares the bulk path and the mapping.
_V5_LAYOUT = (
    (8, 4),
    (12, 4),
    (15, 4),
    (10, 2),
    (14, 2),
    (2, 4),
    (1, 4),
    (22, 4),
    (21, 4),
    (7, 2),
    (11, 2),
    (210, 1),
    (6, 1),
    (4, 1),
    (5, 1),
    (16, 2),
    (17, 2),
    (9, 1),
    (13, 1),
    (210, 2),
)
V5_TEMPLATE = Template(
    5,
    tuple(FieldSpec(ie, 0, n, IANA[ie][0], _resolve_kind(IANA[ie][1], n)) for ie, n in _V5_LAYOUT),
)

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


Column: TypeAlias = npt.NDArray[Any] | pa.Array


@dataclass
class DecodedBatch:
    """Records of one template, decoded column by column, with per-record message context."""

    version: int
    key: ExporterKey
    template: Template
    columns: dict[str, Column]
    by_ie: dict[tuple[int, int], Column]
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
# Column conversion (vectorised)

_DECIMAL = pa.array([str(i) for i in range(256)], pa.string())
_HEX2 = pa.array([f"{i:02x}" for i in range(256)], pa.string())


def _combine_be(a: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
    """Big-endian unsigned value of each row of an (n, k) byte matrix (reduced-size encoding)."""
    out = np.zeros(a.shape[0], np.uint64)
    for j in range(a.shape[1]):
        out = (out << np.uint64(8)) | a[:, j].astype(np.uint64)
    return out


def ipv4_text(values: npt.NDArray[Any]) -> pa.Array:
    """Dotted quads for an array of 32-bit addresses, without a Python loop.

    Each octet picks its text from a 256-entry table (``take`` is several times faster than
    casting integers to strings), and Arrow joins the four parts.
    """
    v = values.astype(np.uint32)
    parts = [_DECIMAL.take(pa.array(((v >> np.uint32(s)) & np.uint32(255)).astype(np.int32)))
             for s in (24, 16, 8, 0)]  # fmt: skip
    return pc.binary_join_element_wise(*parts, ".")


def ipv6_text(a: npt.NDArray[np.uint8]) -> pa.Array:
    """RFC 5952 text of (n, 16) address bytes; formatted once per distinct address."""
    if len(a) == 0:
        return pa.array([], pa.string())
    flat = np.ascontiguousarray(a).view("V16").ravel()
    uniq, inverse = np.unique(flat, return_inverse=True)
    text = pa.array([str(ipaddress.IPv6Address(u.tobytes())) for u in uniq], pa.string())
    return text.take(pa.array(inverse.ravel().astype(np.int64)))


def _mac_text(a: npt.NDArray[np.uint8]) -> pa.Array:
    parts = [_HEX2.take(pa.array(a[:, j].astype(np.int64))) for j in range(a.shape[1])]
    return pc.binary_join_element_wise(*parts, ":")


def _bytes_rows(a: npt.NDArray[np.uint8]) -> list[bytes]:
    flat = np.ascontiguousarray(a)
    size = flat.shape[1] if flat.ndim == 2 else 0
    raw = flat.tobytes()
    return [raw[i * size : (i + 1) * size] for i in range(flat.shape[0])]


def _text(rows: Iterable[bytes]) -> pa.Array:
    return pa.array([r.rstrip(b"\0").decode("utf-8", "replace") for r in rows], pa.string())


def _hex(rows: Iterable[bytes]) -> pa.Array:
    return pa.array([r.hex() for r in rows], pa.string())


def _ntp_us(v: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """NTP timestamps (seconds since 1900, 2^-32 fractions) as Unix microseconds."""
    v = v.astype(np.uint64)
    secs = (v >> np.uint64(32)).astype(np.int64) - NTP_EPOCH_OFFSET
    frac = ((v & np.uint64(0xFFFFFFFF)) * np.uint64(1_000_000)) >> np.uint64(32)
    return secs * 1_000_000 + frac.astype(np.int64)


def _convert(spec: FieldSpec, a: npt.NDArray[Any]) -> Column:
    """One fixed-length field's raw values -> numbers (numpy) or text (Arrow)."""
    kind = spec.kind
    if kind == "u":
        return _combine_be(a) if a.ndim == 2 else a.astype(np.uint64)
    if kind == "i":
        if a.ndim == 2:
            shift = np.uint64(64 - 8 * spec.length)
            return ((_combine_be(a) << shift).view(np.int64) >> np.int64(shift)).astype(np.int64)
        return a.astype(np.int64)
    if kind == "f":
        return a.astype(np.float64)
    if kind == "ip4":
        return ipv4_text(a)
    if kind == "ip6":
        return ipv6_text(a)
    if kind == "mac":
        return _mac_text(a)
    if kind == "ntp":
        return _ntp_us(a)
    rows = _bytes_rows(a)
    if kind == "str":
        return _text(rows)
    return _app_id(rows) if spec.ie == 95 and spec.pen == 0 else _hex(rows)


def _app_id(rows: Iterable[bytes]) -> pa.Array:
    """RFC 6759 applicationId: classification engine id, then selector ("engine..selector")."""
    return pa.array(
        [f"{r[0]}..{int.from_bytes(r[1:], 'big')}" if r else "" for r in rows], pa.string()
    )


# ---------------------------------------------------------------------------------------------
# The decoder

_U16 = struct.Struct(">H")
_U16x2 = struct.Struct(">HH")
_U16x3 = struct.Struct(">HHH")
_V5_HEADER = struct.Struct(">HHIIIIBBH")
_V9_HEADER = struct.Struct(">HHIIII")
_IPFIX_HEADER = struct.Struct(">HHIII")


def _shifted(at: Callable[[int], int], shift: int) -> Callable[[int], int]:
    """Offsets of a message that starts ``shift`` bytes into what was fed."""
    return lambda pos: at(shift + pos)


class Decoder:
    """Decodes export messages into :class:`DecodedBatch` es, rejects and counters.

    Feed messages with :meth:`feed`, collect output with :meth:`flush` (and :meth:`take_rejects`)
    as often as memory requires, and call :meth:`finish` at the end of an input so that data
    still waiting for a template is rejected rather than forgotten.
    """

    def __init__(self, cache: TemplateCache | None = None, max_held_sets: int = MAX_HELD_SETS):
        self.cache = DEFAULT_CACHE if cache is None else cache
        self.max_held_sets = max_held_sets
        self.stats: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self._rejects: list[Reject] = []
        self._pending: dict[ExporterKey, deque[_Chunk]] = {}
        self._acc: dict[Template, tuple[int, ExporterKey, list[_Chunk]]] = {}
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
        self.stats["bytes_in"] += len(message)
        self.stats["messages"] += 1
        base = offset
        at = (lambda pos: base + pos) if set_offsets else (lambda pos: base)
        if len(message) < 4:
            self._reject(
                at(0),
                message,
                "truncated message",
                f"message of {len(message)} bytes is too short for a NetFlow/IPFIX header",
            )
            return
        version = _U16.unpack_from(message)[0]
        if version == 5:
            self._v5(message, exporter, at)
        elif version == 9:
            self._v9(message, exporter, at)
        elif version == 10:
            pos = 0
            while pos < len(message):
                # Several IPFIX messages stored back to back (a file, a stream) all decode.
                used = self._ipfix(message[pos:], exporter, _shifted(at, pos))
                pos += used
                rest = message[pos:]
                if not rest:
                    break
                if len(rest) < 16 or rest[:2] != b"\x00\x0a" or used == 0:
                    self._reject(
                        at(pos),
                        rest,
                        "trailing bytes",
                        f"{len(rest)} bytes after the {used}-byte IPFIX message",
                    )
                    break
        else:
            self._reject(
                at(0),
                message,
                "unsupported version",
                f"version {version} is not NetFlow v5, v9 or IPFIX (10)",
            )

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _v5(self, msg: bytes, exporter: str, at: Callable[[int], int]) -> None:
        n = len(msg)
        if n < _V5_HEADER.size:
            self._reject(
                at(0),
                msg,
                "truncated message",
                f"NetFlow v5 message of {n} bytes is shorter than its 24-byte header",
            )
            return
        _, count, uptime, secs, nsecs, _, etype, eid, sampling = _V5_HEADER.unpack_from(msg)
        if count > V5_MAX_RECORDS:
            self._reject(
                at(0),
                msg,
                "bad length",
                f"NetFlow v5 header announces {count} records (at most 30 allowed)",
            )
            return
        need = 24 + 48 * count
        if n < need:
            self._reject(
                at(0),
                msg,
                "truncated message",
                f"truncated NetFlow v5 message: {count} records need {need} bytes, "
                f"only {n} present",
            )
            return
        key = (exporter, 5, etype << 8 | eid)
        interval = sampling & 0x3FFF
        if interval > 1:
            self.cache.sampling[key] = interval
        self._ok(24)
        if need < n:
            self._reject(
                at(need),
                msg[need:],
                "trailing bytes",
                f"{n - need} bytes after the {count} records the NetFlow v5 header announces",
            )
        if count:
            chunk = _Chunk(
                key,
                5,
                msg[24:need],
                secs * 1_000_000 + nsecs // 1000,
                uptime,
                at(24),
                self._next_seq(),
            )
            self._accumulate(V5_TEMPLATE, 5, chunk)

    def _v9(self, msg: bytes, exporter: str, at: Callable[[int], int]) -> None:
        n = len(msg)
        if n < _V9_HEADER.size:
            self._reject(
                at(0),
                msg,
                "truncated message",
                f"NetFlow v9 message of {n} bytes is shorter than its 20-byte header",
            )
            return
        _, _, uptime, secs, _, source_id = _V9_HEADER.unpack_from(msg)
        key = (exporter, 9, source_id)
        self._ok(20)
        self._sets(msg, 20, n, key, 9, secs * 1_000_000, uptime, at)

    def _ipfix(self, msg: bytes, exporter: str, at: Callable[[int], int]) -> int:
        """Decode the IPFIX message at the start of ``msg``; returns the bytes it took."""
        n = len(msg)
        if n < _IPFIX_HEADER.size:
            self._reject(
                at(0),
                msg,
                "truncated message",
                f"IPFIX message of {n} bytes is shorter than its 16-byte header",
            )
            return n
        _, length, export_time, _, domain = _IPFIX_HEADER.unpack_from(msg)
        if length < 16 or length > n:
            self._reject(
                at(0),
                msg,
                "bad length",
                f"IPFIX header says the message is {length} bytes, {n} bytes present",
            )
            return n
        key = (exporter, 10, domain)
        self._ok(16)
        self._sets(msg, 16, length, key, 10, export_time * 1_000_000, -1, at)
        return int(length)

    def _sets(
        self,
        msg: bytes,
        pos: int,
        end: int,
        key: ExporterKey,
        version: int,
        export_us: int,
        uptime: int,
        at: Callable[[int], int],
    ) -> None:
        """Walk the (flow)sets of one message."""
        template_set, options_set = (0, 1) if version == 9 else (2, 3)
        while pos < end:
            if end - pos < 4:
                self._padding(msg[pos:end])
                return
            set_id, length = _U16x2.unpack_from(msg, pos)
            if length < 4 or pos + length > end:
                if not msg[pos:end].strip(b"\0"):
                    self._padding(msg[pos:end])  # zero-filled tail (fixed-size export buffers)
                    return
                self._reject(
                    at(pos),
                    msg[pos:end],
                    "bad length",
                    f"set {set_id} at byte {pos} has length {length}, "
                    f"{end - pos} bytes remain in the message",
                )
                return
            body = msg[pos + 4 : pos + length]
            if set_id in (template_set, options_set):
                self._ok(4)
                self._templates(body, key, version, at(pos), set_id == options_set, set_id)
            elif set_id < 256:
                self._reject(
                    at(pos),
                    msg[pos : pos + length],
                    "reserved set id",
                    f"set id {set_id} at byte {pos} is reserved",
                )
            else:
                # A data set's 4 header bytes are accounted when the set is decoded or rejected.
                chunk = _Chunk(key, set_id, body, export_us, uptime, at(pos), self._next_seq())
                template = self.cache.get(key, set_id)
                if template is None:
                    self._hold(chunk)
                else:
                    self._accumulate(template, version, chunk)
            pos += length

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
        entry = self._acc.get(template)
        if entry is None:
            self._acc[template] = (version, chunk.key, [chunk])
        else:
            entry[2].append(chunk)

    def flush(self) -> list[DecodedBatch]:
        """Decode everything accumulated so far; batches of flow and options records."""
        out = self._done
        self._done = []
        acc, self._acc = self._acc, {}
        for template, (version, key, chunks) in acc.items():
            batch = self._decode(template, version, key, chunks)
            if batch is not None:
                out.append(batch)
        return out

    def take_rejects(self) -> list[Reject]:
        out, self._rejects = self._rejects, []
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
        bodies, counts, kept = [], [], []
        for c in chunks:
            self._ok(0 if version == 5 else 4)
            count = len(c.body) // size
            used = count * size
            if used < len(c.body):
                self._padding(c.body[used:])
            if count:
                bodies.append(c.body[:used] if used < len(c.body) else c.body)
                counts.append(count)
                kept.append(c)
                self._ok(used)
        if not kept:
            return None
        records = np.frombuffer(b"".join(bodies), dtype=template.dtype)
        raw = {name: records[name] for name in template.dtype.names or ()}
        return self._batch(template, version, key, kept, counts, raw, {})

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
        raw: dict[str, npt.NDArray[Any]] = {}
        var: dict[str, list[bytes]] = {}
        for spec, name, vals in zip(template.fields, template.names, values, strict=True):
            if spec.length == VARIABLE:
                var[name] = vals
            elif spec.length:
                single = np.dtype([(name, _field_format(spec))])
                raw[name] = np.frombuffer(b"".join(vals), dtype=single)[name]
        return self._batch(template, version, key, kept, counts, raw, var)

    def _batch(
        self,
        template: Template,
        version: int,
        key: ExporterKey,
        chunks: list[_Chunk],
        counts: list[int],
        raw: dict[str, npt.NDArray[Any]],
        var: dict[str, list[bytes]],
    ) -> DecodedBatch:
        reps = np.asarray(counts, np.int64)

        def rep(values: list[int]) -> npt.NDArray[np.int64]:
            return np.repeat(np.asarray(values, np.int64), reps)

        columns: dict[str, Column] = {}
        by_ie: dict[tuple[int, int], Column] = {}
        for spec, name in zip(template.fields, template.names, strict=True):
            if name in raw:
                col: Column = _convert(spec, raw[name])
            elif name in var:
                col = (
                    _text(var[name])
                    if spec.kind == "str"
                    else _app_id(var[name])
                    if (spec.pen, spec.ie) == (0, 95)
                    else _hex(var[name])
                )
            else:
                continue
            columns[name] = col
            by_ie.setdefault((spec.pen, spec.ie), col)
        kind = "option_records" if template.options else "flow_records"
        self.stats[kind] += int(reps.sum())
        return DecodedBatch(
            version,
            key,
            template,
            columns,
            by_ie,
            rep([c.export_us for c in chunks]),
            rep([c.uptime_ms for c in chunks]),
            rep([c.offset for c in chunks]),
            rep([c.seq for c in chunks]),
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
        if batch.version in (5, 9):
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
    if batch.version == 5:
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
    action_np = np.full(n, "unknown", dtype=object)
    if event is not None:
        action_np[np.isin(event, list(FIREWALL_ALLOW))] = "allow"
        action_np[np.isin(event, list(FIREWALL_DENY))] = "deny"
    if ext is not None:
        action_np[(ext >= 1001) & (ext <= 1004)] = "deny"
    rule = _rule(batch, n)
    service = _coalesce_text(n, _txt(batch, 56701, 96, 57591))
    flow_id = _num(batch, 148)
    flow_uid = (
        pa.nulls(n, pa.string()) if flow_id is None else pc.cast(pa.array(flow_id), pa.string())
    )
    src_ip = _coalesce_text(n, _txt(batch, 8), _txt(batch, 27))
    dst_ip = _coalesce_text(n, _txt(batch, 12), _txt(batch, 28))
    key = batch.key
    exporter = key[0] if key[2] == 0 or batch.version == 5 else f"{key[0]}#{key[2]}"
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
            "action": pa.array(action_np, pa.string()),
            "rule": rule,
            "exporter": pa.array([exporter] * n, pa.string()) if n else pa.array([], pa.string()),
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
