"""One realistic, valid envelope per message type, built as typed Structs.

Scenario: MINUSCA (Central African Republic). UNMAS coordinates mine action; MAG, a demining
NGO, works the RN3 main supply route near Bouar; DPKO (New York) directs; OCHA, WFP and UNDP
coordinate. Timestamps are fixed so the generated files are reproducible.
"""

from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import msgspec

from liaison.schemas import wire
from liaison.schemas.catalogue import tag_of
from liaison.schemas.envelope import Body, Envelope
from liaison.schemas.messages import coordination as co
from liaison.schemas.messages import hazards as hz
from liaison.schemas.messages import operations as op
from liaison.schemas.messages import resources as rs
from liaison.schemas.messages import system as sy
from liaison.schemas.types import Classification, Point, Polygon, Precedence

__all__ = ["EXAMPLES", "example"]

T0: Final = datetime(2024, 3, 12, 7, 45, tzinfo=UTC)
BOUAR_RN3: Final = Point(coordinates=(15.6012, 5.9347))
SITE_B7: Final = Polygon(
    coordinates=[
        [
            (15.5981, 5.9312),
            (15.6043, 5.9312),
            (15.6043, 5.9371),
            (15.5981, 5.9371),
            (15.5981, 5.9312),
        ]
    ]
)


def _at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def _bodies() -> list[tuple[str, list[str], Body, dict[str, Any]]]:
    """(sender, recipients, body, extra envelope fields) for every example."""
    casualty = hz.Casualties(category=hz.CasualtyCategory.CIVILIAN, killed=1, injured=2)
    return [
        (
            "unmas",
            ["mission:minusca", "group:icg-ma", "org:ocha"],
            hz.HazardAlert(
                event="Anti-vehicle mine detonation on RN3",
                category=hz.AlertCategory.SAFETY,
                urgency=hz.Urgency.IMMEDIATE,
                severity=hz.Severity.SEVERE,
                certainty=hz.Certainty.OBSERVED,
                headline="Avoid RN3 between Bouar and Baboua: suspected further mines",
                description="A civilian truck struck an anti-vehicle mine 4 km west of Bouar.",
                instruction="Suspend road movements on RN3 west of Bouar until route verification.",
                area=[hz.AlertArea(area_desc="RN3, Bouar to Baboua", polygon=SITE_B7)],
                effective=_at(0),
                expires=_at(48),
            ),
            {"precedence": Precedence.FLASH, "incident_id": "MINUSCA-INC-2024-0312"},
        ),
        (
            "mag-car",
            ["org:unmas", "mission:minusca"],
            hz.EoSpotReport(
                location=BOUAR_RN3,
                location_desc="RN3 km 4 west of Bouar, 15 m north of the road shoulder",
                device_category=hz.DeviceCategory.LANDMINE,
                device_type="TM-57 anti-vehicle mine",
                quantity=1,
                condition=hz.DeviceCondition.INTACT,
                marked=True,
                action_taken=hz.ActionTaken.CORDONED,
                found_at=_at(-1.5),
                reported_by="MAG EOD team 3, team leader",
            ),
            {"precedence": Precedence.IMMEDIATE, "incident_id": "MINUSCA-INC-2024-0312"},
        ),
        (
            "unmas",
            ["group:icg-ma"],
            hz.AreaReport(
                area_id="CAF-SHA-0457",
                name="Bouar west, RN3 verge",
                status=hz.AreaStatus.CONFIRMED,
                polygon=SITE_B7,
                area_m2=45_600.0,
                hazard_types=[hz.DeviceCategory.LANDMINE, hz.DeviceCategory.UXO],
                land_use_blocked=[hz.LandUse.ROAD, hz.LandUse.AGRICULTURE],
                evidence="Mine accident 12 March 2024; villagers report two further devices.",
                surveyed_on=date(2024, 3, 13),
            ),
            {},
        ),
        (
            "mag-car",
            ["org:unmas"],
            hz.ClearanceReport(
                task_id="UNMAS-CAF-T-0193",
                area_id="CAF-SHA-0457",
                area=SITE_B7,
                method=hz.ClearanceMethod.CLEARANCE,
                area_cleared_m2=45_600.0,
                area_released_m2=45_600.0,
                devices_destroyed=[
                    hz.DevicesDestroyed(category=hz.DeviceCategory.LANDMINE, quantity=3),
                    hz.DevicesDestroyed(category=hz.DeviceCategory.UXO, quantity=5),
                ],
                started_on=date(2024, 3, 18),
                completed_on=date(2024, 4, 2),
                organisation="mag-car",
                team="MAG manual clearance team 2",
            ),
            {},
        ),
        (
            "minusca",
            ["org:dpko", "org:unmas", "org:ocha"],
            hz.IncidentReport(
                kind=hz.IncidentKind.EXPLOSIVE_ACCIDENT,
                occurred_at=_at(-3),
                location=BOUAR_RN3,
                location_desc="RN3 km 4 west of Bouar",
                summary="Civilian cargo truck struck an anti-vehicle mine; driver killed.",
                casualties=[casualty],
                device_category=hz.DeviceCategory.LANDMINE,
            ),
            {"precedence": Precedence.IMMEDIATE, "incident_id": "MINUSCA-INC-2024-0312"},
        ),
        (
            "minusca",
            ["group:humanitarian-ct", "org:wfp"],
            hz.AccessRestriction(
                route_or_area="RN3 Bouar to Baboua",
                status=hz.AccessStatus.CLOSED,
                reason="Mine accident; route verification by UNMAS partners under way.",
                valid_from=_at(1),
                valid_until=_at(72),
                polygon=SITE_B7,
                alternative_route="Bouar to Baboua via Niem (track, 4x4 only)",
            ),
            {"precedence": Precedence.PRIORITY},
        ),
        (
            "dpko",
            ["mission:minusca"],
            op.MandateUpdate(
                resolution="S/RES/2709 (2023)",
                mission="minusca",
                mandated_tasks=[
                    "Protection of civilians",
                    "Support for the extension of State authority",
                    "Facilitate the delivery of humanitarian assistance",
                ],
                effective_from=date(2023, 11, 15),
                effective_until=date(2024, 11, 15),
                authorized_strengths=[
                    op.AuthorizedStrength(category=op.StrengthCategory.TROOPS, ceiling=14_400),
                    op.AuthorizedStrength(
                        category=op.StrengthCategory.INDIVIDUAL_POLICE, ceiling=600
                    ),
                ],
            ),
            {},
        ),
        (
            "unmas",
            ["org:mag-car"],
            op.TaskingOrder(
                task_id="UNMAS-CAF-T-0193",
                assignee="mag-car",
                task_type=op.TaskType.ROUTE_VERIFICATION,
                description="Verify RN3 Bouar-Baboua (38 km); clear confirmed area CAF-SHA-0457.",
                location_desc="RN3 Bouar to Baboua",
                polygon=SITE_B7,
                due=_at(96),
            ),
            {"precedence": Precedence.PRIORITY},
        ),
        (
            "mag-car",
            ["org:unmas"],
            op.TaskingStatus(
                task_id="UNMAS-CAF-T-0193",
                state=op.TaskState.IN_PROGRESS,
                progress_pct=40,
                note="15 of 38 km verified; one further device found and destroyed.",
            ),
            {"in_reply_to": "unmas-2024-03-12-0008"},
        ),
        (
            "minusca",
            ["org:dpko"],
            op.Sitrep(
                period_start=_at(-24),
                period_end=_at(0),
                component=op.Component.MINE_ACTION,
                mission="minusca",
                summary="One mine accident on RN3; route closed; verification tasked to MAG.",
                sections=[op.SitrepSection(heading="Outlook", text="RN3 to reopen within 72 h.")],
            ),
            {"classification": Classification.CONFIDENTIAL},
        ),
        (
            "dpko",
            ["mission:minusca", "org:unmas"],
            op.GuidanceNotice(
                domain=op.GuidanceDomain.MINE_ACTION,
                title="Interim guidance: route verification before convoy movements",
                text="Until further notice, convoys use only routes verified within 14 days.",
                effective_from=_at(24),
                document_ref="DPO-2024-MA-007",
            ),
            {},
        ),
        (
            "mag-car",
            ["org:unmas"],
            rs.ResourceRequest(
                request_id="MAG-CAF-RR-0021",
                category=rs.ResourceCategory.EQUIPMENT,
                items=[
                    rs.ResourceItem(
                        description="Large-loop metal detector", quantity=4, unit="each"
                    ),
                    rs.ResourceItem(
                        description="Demolition charge, 250 g", quantity=40, unit="each"
                    ),
                ],
                needed_by=_at(72),
                delivery_location_desc="MAG field base, Bouar",
                delivery_location=Point(coordinates=(15.5965, 5.9391)),
                justification="Deep-buried anti-vehicle mines on RN3 exceed our detectors' range.",
            ),
            {},
        ),
        (
            "unmas",
            ["org:mag-car"],
            rs.ResourceResponse(
                request_id="MAG-CAF-RR-0021",
                decision=rs.Decision.COMMIT,
                items=[
                    rs.ResourceItem(
                        description="Large-loop metal detector", quantity=4, unit="each"
                    )
                ],
                eta=_at(48),
                conditions="Charges to follow from the Bangui stockpile next week.",
            ),
            {"in_reply_to": "mag-car-2024-03-12-0012"},
        ),
        (
            "unmas",
            ["org:mag-car"],
            rs.ResourceDeploymentStatus(
                request_id="MAG-CAF-RR-0021",
                status=rs.DeploymentState.EN_ROUTE,
                location_desc="MINUSCA convoy, Yaloké",
                location=Point(coordinates=(17.0869, 5.3158)),
                eta=_at(30),
            ),
            {},
        ),
        (
            "mag-car",
            ["org:unmas"],
            rs.ResourceRelease(
                request_id="MAG-CAF-RR-0021",
                released_items=[
                    rs.ResourceItem(
                        description="Large-loop metal detector", quantity=4, unit="each"
                    )
                ],
                reason="Task UNMAS-CAF-T-0193 complete.",
                released_at=_at(500),
            ),
            {},
        ),
        (
            "unmas",
            ["group:icg-ma"],
            co.MeetingNotice(
                group="icg-ma",
                title="Mine action sub-cluster, Bouar",
                start=_at(50),
                end=_at(52),
                venue="MINUSCA Sector West HQ, Bouar",
                virtual_link="https://meet.example.org/icg-ma-bouar",
                agenda=["RN3 accident and verification", "Risk education in Baboua"],
            ),
            {},
        ),
        (
            "ocha",
            ["group:icg-ma"],
            co.InformationRequest(
                question="Which routes west of Bouar are verified for humanitarian convoys?",
                topics=["access", "rn3"],
                respond_by=_at(24),
            ),
            {},
        ),
        (
            "unmas",
            ["org:ocha"],
            co.InformationResponse(
                request_ref="ocha-2024-03-12-0017",
                answer="RN3 is closed west of Bouar; the Niem track was verified on 5 March.",
                attachments=["https://files.example.org/unmas/caf/rn3-status-2024-03-12.pdf"],
            ),
            {"in_reply_to": "ocha-2024-03-12-0017"},
        ),
        (
            "minusca",
            ["org:dpko", "org:undp"],
            co.DdrReport(
                programme="MINUSCA DDR national programme",
                mission="minusca",
                period_start=date(2024, 2, 1),
                period_end=date(2024, 2, 29),
                location_desc="Bouar disarmament site",
                combatants_disarmed=112,
                combatants_demobilized=108,
                combatants_reintegrated=64,
                weapons_collected=97,
                ammunition_rounds_collected=4_310,
                explosive_items_collected=22,
            ),
            {},
        ),
        (
            "mag-car",
            ["org:unmas"],
            sy.Ack(
                ref_distribution_id="unmas-2024-03-12-0008",
                ref_sender="unmas",
                level=sy.AckLevel.ACCEPTED,
                note="Team 3 deploys at 06:00.",
            ),
            {"in_reply_to": "unmas-2024-03-12-0008"},
        ),
        (
            wire.HUB_SENDER,
            ["org:mag-car"],
            sy.ErrorReport(
                code=301,
                name="invalid_body",
                reason="Expected `int` >= 1 - at `$.body.quantity`",
                retryable=False,
                field_path="$.body.quantity",
                ref_distribution_id="mag-car-2024-03-12-0009",
                ref_type="hazard.eo_spot_report",
            ),
            {},
        ),
        (
            "unmas",
            ["org:liaison"],
            sy.StatusRequest(ref_distribution_id="unmas-2024-03-12-0008", ref_sender="unmas"),
            {},
        ),
        (
            "liaison",
            ["org:unmas"],
            sy.StatusReport(
                ref_distribution_id="unmas-2024-03-12-0008",
                ref_sender="unmas",
                found=True,
                recipients=[
                    sy.CopyStatus(org="mag-car", state="receipt_accepted", since=_at(0.35)),
                    sy.CopyStatus(org="unicef", state="in_inbox", since=_at(0.2)),
                ],
            ),
            {"in_reply_to": "unmas-2024-03-12-0022"},
        ),
    ]


def _envelopes() -> dict[str, Envelope]:
    examples: dict[str, Envelope] = {}
    for n, (sender, recipients, body, extra) in enumerate(_bodies(), start=1):
        envelope = Envelope(
            distribution_id=f"{sender}-2024-03-12-{n:04d}",
            sender=sender,
            sent_at=_at(n / 60),
            recipients=recipients,
            body=body,
        )
        examples[tag_of(type(body))] = msgspec.structs.replace(envelope, **extra)
    return examples


#: Wire type name -> an example envelope carrying that type.
EXAMPLES: Final[dict[str, Envelope]] = _envelopes()


def example(type_name: str) -> Envelope:
    """The example envelope for a wire type name."""
    return EXAMPLES[type_name]
