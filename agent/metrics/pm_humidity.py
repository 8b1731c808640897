"""PM2.5 from a Plantower sensor corrected for relative humidity: the US EPA correction.

Sources:

* Barkjohn, Gantt & Clements, "Development and application of a United States-wide
  correction for PM2.5 data collected with the PurpleAir sensor", Atmos. Meas. Tech. 14,
  4617–4637, 2021, https://doi.org/10.5194/amt-14-4617-2021 (US-wide correction):
  ``PM2.5 = 0.524 × PA_cf1 − 0.0862 × RH + 5.75``. PA_cf1 is the **CF=1** PM2.5 of the
  Plantower PMS5003 (PurpleAir's "pm2.5_cf_1", A and B channels averaged), RH the relative
  humidity in %. Coefficients as restated by PurpleAir's community forum
  (https://community.purpleair.com/t/new-epa-correction/10372) and Home Assistant's
  purpleair-local release notes [secondary sources; the paper's text was not readable here].
* The extension for high concentrations used by the AirNow Fire and Smoke Map (EPA, "AirNow
  Fire and Smoke Map Questions and Answers",
  https://document.airnow.gov/airnow-fire-and-smoke-map-questions-and-answers.pdf, the
  "October 2021" correction), as transcribed with its five segments in the Central
  California Asthma Collaborative's "camp" code (``EPA_PM25_Oct2021``) [secondary]:

  ====================  =====================================================================
  PA_cf1 (µg/m³)        corrected PM2.5 (µg/m³)
  ====================  =====================================================================
  [0, 30)               0.524·PA − 0.0862·RH + 5.75
  [30, 50)              [0.786·f + 0.524·(1 − f)]·PA − 0.0862·RH + 5.75,  f = PA/20 − 3/2
  [50, 210)             0.786·PA − 0.0862·RH + 5.75
  [210, 260)            [0.69·f + 0.786·(1 − f)]·PA − 0.0862·RH·(1 − f) + 2.966·f
                        + 5.75·(1 − f) + 8.84e-4·PA²·f,  f = PA/50 − 21/5
  ≥ 260                 2.966 + 0.69·PA + 8.84e-4·PA²   (no RH term)
  ====================  =====================================================================

  The blending segments make the curve continuous: at 30, 50, 210 and 260 both sides agree
  (tested). EPA's 2022 paper (Barkjohn et al., "Correction and Accuracy of PurpleAir PM2.5
  Measurements for Extreme Wildfire Smoke", Sensors 22, 9669) later proposed a 3-range
  variant (breaks at PA_cf1 570 and 611) whose quadratic coefficients could not be read here:
  NOT implemented.

Validity, as this module applies it:

* the input must be CF=1 PM2.5 in [0, 500] µg/m³: 500 is the top of the PMS5003's effective
  range (Plantower PMS5003 datasheet, "effective range 0–500 µg/m³", maximum ≥ 1000); above it
  the value is still computed but flagged ``pm_beyond_range``; a negative input gives no value;
* RH must be a number in [0, 100] %; otherwise no value (``humidity_out_of_range``). EPA's
  fit used the *raw* RH of the PurpleAir's own BME280, inside its warm housing (AirGradient,
  "EPA correction and AirGradient", https://www.airgradient.com/blog/epa-correction-and-airgradient/,
  as quoted in MallocArray/airgradient_esphome#92), which reads drier than the air outside.
  A Vatio site names a separate RH device, usually a proper probe: its higher RH makes the
  correction subtract a little more (0.0862 µg/m³ per % RH). Prefer an RH sensor in the PM
  sensor's enclosure where there is one;
* the formula was fitted on hourly and 24-hour means: a single reading's correction is as
  good as the reading, and the hourly mean of corrected values equals the correction of the
  hourly mean wherever the segment is linear (below 210 µg/m³);
* a negative result (clean, humid air) is published as 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PM_MAX_UGM3 = 500.0  # PMS5003 effective range (datasheet)


@dataclass(frozen=True)
class Corrected:
    value: float | None  # µg/m³, None when it could not be computed
    flag: str = ""  # a quality reason, "" when the value is fine


def epa_correction(pa_cf1: float, rh: float) -> float:
    """EPA's PurpleAir correction with the AirNow Fire and Smoke Map extension (table above).

    No range checks: see :func:`correct` for the checked version."""
    pa = pa_cf1
    if pa < 30:
        out = 0.524 * pa - 0.0862 * rh + 5.75
    elif pa < 50:
        f = pa / 20 - 1.5
        out = (0.786 * f + 0.524 * (1 - f)) * pa - 0.0862 * rh + 5.75
    elif pa < 210:
        out = 0.786 * pa - 0.0862 * rh + 5.75
    elif pa < 260:
        f = pa / 50 - 4.2
        out = (
            (0.69 * f + 0.786 * (1 - f)) * pa
            - 0.0862 * rh * (1 - f)
            + 2.966 * f
            + 5.75 * (1 - f)
            + 8.84e-4 * pa**2 * f
        )
    else:
        out = 2.966 + 0.69 * pa + 8.84e-4 * pa**2
    return max(out, 0.0)


def correct(pa_cf1: float | None, rh: float | None) -> Corrected:
    """The corrected PM2.5, or None, with the quality reason (module docstring)."""
    if pa_cf1 is None or not math.isfinite(pa_cf1) or pa_cf1 < 0:
        return Corrected(None, "pm_invalid")
    if rh is None:
        return Corrected(None, "humidity_missing")
    if not math.isfinite(rh) or not 0.0 <= rh <= 100.0:
        return Corrected(None, "humidity_out_of_range")
    value = round(epa_correction(pa_cf1, rh), 2)
    return Corrected(value, "pm_beyond_range" if pa_cf1 > PM_MAX_UGM3 else "")
