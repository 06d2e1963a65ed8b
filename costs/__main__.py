"""``python -m costs``: monthly cost per profile and the serverless/container break-even.

Reads ``cdk.out/*.template.json`` (``make synth``) and ``costs/prices.yaml``; never calls AWS.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from costs.estimate import (
    Assumptions,
    Load,
    PriceError,
    StackEstimate,
    agent_reserved_concurrency,
    break_even,
    estimate_stack,
    fmt_money,
    fmt_price,
    fmt_quantity,
    llm_item,
    load_prices,
    mean_concurrency,
    read_templates,
)

# Stacks that exist only for the container pattern (the hybrid profile's shared VPC with its NAT
# gateway); they count on the container side of the break-even. Other shared stacks (memory,
# front door) serve every pattern and so are reported but left out of the comparison.
CONTAINER_SUPPORT = ("network",)
PATTERNS = ("serverless", "async", "container")


class UsageError(Exception):
    pass


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m costs", description=__doc__)
    parser.add_argument("--requests-per-day", type=float, required=True)
    parser.add_argument("--mean-duration-seconds", type=float, required=True)
    parser.add_argument("--input-tokens", type=float, required=True, help="per request")
    parser.add_argument("--output-tokens", type=float, required=True, help="per request")
    parser.add_argument("--cdk-out", type=Path, default=Path("cdk.out"))
    parser.add_argument(
        "--profile", action="append", help="config env (dev, prod, hybrid); repeatable"
    )
    return parser.parse_args(argv)


def _profiles(requested: list[str] | None) -> dict[str, tuple[str, str, bool]]:
    """env -> (stack name prefix, model id, container pattern on), from config/*.yaml."""
    from config.loader import available_envs, load_config

    envs = available_envs()
    unknown = sorted(set(requested or []) - set(envs))
    if unknown:
        raise UsageError(
            f"unknown profile {', '.join(unknown)}: choose from {', '.join(envs)} (config/*.yaml)"
        )
    out: dict[str, tuple[str, str, bool]] = {}
    for env in requested or envs:
        config = load_config(env)
        out[env] = (config.name, config.llm.model_id, config.container.enabled)
    return out


def _table(estimates: list[StackEstimate], requests_per_month: float) -> list[str]:
    lines = [
        f"  {'stack / resource':<52} {'item':<40} {'qty/month at load':>18} "
        f"{'unit price':>14} {'idle $/mo':>11} {'at load $/mo':>13}"
    ]
    for est in estimates:
        for item in est.items:
            lines.append(
                f"  {(est.stack + ' ' + item.resource)[:52]:<52} {item.what[:40]:<40} "
                f"{fmt_quantity(item.quantity(requests_per_month)):>18} "
                f"{fmt_price(item.unit_price) + '/' + item.unit:>14} "
                f"{fmt_money(item.idle):>11} {fmt_money(item.monthly(requests_per_month)):>13}"
            )
        for lid, rtype in est.not_priced:
            lines.append(f"  {(est.stack + ' ' + lid)[:52]:<52} NOT PRICED: {rtype}")
    return lines


def run(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    load = Load(
        args.requests_per_day, args.mean_duration_seconds, args.input_tokens, args.output_tokens
    )
    if (
        min(
            load.requests_per_day, load.mean_duration_seconds, load.input_tokens, load.output_tokens
        )
        < 0
    ):
        raise UsageError("load figures must be zero or more")
    if not args.cdk_out.is_dir() or not any(args.cdk_out.glob("*.template.json")):
        raise UsageError(
            f"no templates in {args.cdk_out}: run `make synth` first (or pass --cdk-out)"
        )
    profiles = _profiles(args.profile)
    templates = read_templates(args.cdk_out)
    # Check every requested profile before printing anything: a half table then an error
    # would read as a result.
    missing = [
        prefix
        for prefix, _, _ in profiles.values()
        if not any(name.startswith(prefix + "-") for name in templates)
    ]
    if missing:
        raise UsageError(
            f"no {', '.join(p + '-*' for p in missing)} templates in {args.cdk_out}: "
            "run `make synth` (or pass --profile)"
        )
    prices = load_prices()
    assumptions = Assumptions()
    per_month = load.requests_per_month
    print(
        f"Monthly cost estimate, us-east-1 list prices as of {prices.as_of} (costs/prices.yaml; "
        "check before relying on them). Month = 730 h."
    )
    print(
        f"Load: {load.requests_per_day:g} requests/day ({per_month:,.0f}/month), "
        f"{load.mean_duration_seconds:g} s mean agent run, "
        f"{load.input_tokens:g} input + {load.output_tokens:g} output tokens per request."
    )
    print("Assumptions (costs/estimate.py, Assumptions):")
    for name, value in vars(assumptions).items():
        print(f"  {name} = {value:g}")
    summary: list[str] = []
    for env, (prefix, model_id, container_on) in profiles.items():
        stacks = {
            name.removeprefix(prefix + "-"): tpl
            for name, tpl in templates.items()
            if name.startswith(prefix + "-")
        }
        est = {
            role: estimate_stack(f"{prefix}-{role}", tpl, prices, load, assumptions)
            for role, tpl in stacks.items()
        }
        llm = StackEstimate(
            f"{prefix}-model", [llm_item(f"{prefix}-model", model_id, prices, load)]
        )
        print(f"\n== profile {env} ({prefix}, model {model_id}) ==")
        for line in _table([*est.values(), llm], per_month):
            print(line)
        print(
            f"  {'stack':<30} {'idle $/mo':>11} {'at load $/mo':>13}  (all traffic on this stack)"
        )
        for role, stack_est in est.items():
            serves = role in PATTERNS
            at_load = stack_est.monthly(per_month) + (llm.monthly(per_month) if serves else 0)
            print(
                f"  {stack_est.stack:<30} {fmt_money(stack_est.idle):>11} {fmt_money(at_load):>13}"
            )
        idle_total = sum(x.idle for x in est.values())
        print(f"  {'profile idle (every stack deployed)':<30} {fmt_money(idle_total):>11}")
        serverless = [est[r] for r in ("serverless",) if r in est]
        container = [est[r] for r in ("container", *CONTAINER_SUPPORT) if r in est]
        if serverless and container:
            result = break_even(serverless, container)
            if result.requests_per_day is None:
                text = f"no break-even ({result.reason})"
            else:
                text = f"{result.requests_per_day:,.0f} requests/day"
                in_flight = mean_concurrency(result.requests_per_day, load.mean_duration_seconds)
                reserved = agent_reserved_concurrency(stacks["serverless"])
                text += f" (~{in_flight:.1f} runs in flight on average"
                if reserved is not None and in_flight > reserved:
                    # The linear model ignores throttling: flag a break-even the serverless
                    # stack cannot reach as configured.
                    text += f", above its reserved concurrency {reserved}"
                text += ")"
            summary.append(
                f"  {env:<8} idle {fmt_money(idle_total):>10}   "
                f"serverless vs container break-even: {text}"
            )
        else:
            why = (
                "no serverless+container pair"
                if container_on
                else "container pattern off: container.enabled is false"
            )
            summary.append(f"  {env:<8} idle {fmt_money(idle_total):>10}   ({why})")
    print("\n== summary ==")
    for line in summary:
        print(line)
    print(
        "Break-even: where the serverless stack's cost line (idle + per-request) meets the "
        "container stack's (incl. its network stack) at this mean duration; model tokens cancel."
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except (UsageError, PriceError) as error:
        print(f"python -m costs: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
