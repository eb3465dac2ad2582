"""Are the A/B statistics calibrated? The simulated A/A and A/B tests of
`nextbest.experiments.calibration`, as a table for docs/experiments.md.

    .venv/bin/python benchmarks/experiment_calibration.py [--tests 200]

Per-user click-through over 14 days, 500 new users a day in each arm, users unlike each other
(their click chances drawn from a Beta); the analyst looks every day.
"""

from __future__ import annotations

import argparse

from nextbest.experiments.calibration import (
    Simulation,
    cuped_narrowing,
    detection_rate,
    false_positive_rates,
    planned_power,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=200)
    args = parser.parse_args()
    sim = Simulation()
    rates = false_positive_rates(sim, args.tests, seed=0)
    found = detection_rate(sim, 0.05, args.tests, seed=1)
    narrowing = cuped_narrowing()
    planned = planned_power(sim, lift=0.1, power=0.8, tests=args.tests)
    print(f"{args.tests} A/A tests, alpha {sim.alpha}, {sim.days} daily looks:")
    print("| test | false-positive rate |\n|---|---|")
    print(f"| fixed horizon, read once on the last day | {rates.fixed_once:.1%} |")
    print(
        f"| fixed horizon, peeked daily (stop at the first p < alpha) | {rates.fixed_peeked:.1%} |"
    )
    print(f"| mSPRT, always-valid p-value read daily | {rates.sequential:.1%} |")
    print(f"\n{args.tests} A/B tests with a planted +{found.lift:.0%} click-through:")
    print(
        f"- predicted power of the last-day test (from its own standard error): "
        f"{found.predicted_power:.1%}; found: {found.detected:.1%}"
    )
    print(f"- found by the mSPRT on some day: {found.sequential_detected:.1%}")
    print(
        f"\nPlanned from a 20,000-user pilot, +10% click-through at 80% power: "
        f"{planned.users_per_arm:,} users per arm; {args.tests} tests of that size found it "
        f"{planned.found:.1%} of the time"
    )
    print(
        f"\nCUPED (correlation {narrowing.correlation:.3f} with the pre-period): interval "
        f"width x{narrowing.width_ratio:.4f}, theory sqrt(1 - rho^2) = {narrowing.predicted:.4f}"
    )


if __name__ == "__main__":
    main()
