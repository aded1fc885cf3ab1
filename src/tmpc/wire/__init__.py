"""The wire layer: envelopes that sign (and for point-to-point messages encrypt) every
protocol message end to end, so no transport or relay can read or forge one."""
