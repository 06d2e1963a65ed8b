"""A burst of queued tasks against a worker autoscaler, in 1-second steps.

Workload: ``tasks`` messages arrive at t=0 (or evenly over ``arrival_seconds``); each takes
``mean_seconds`` (``fixed``) or an exponential draw with that mean (``exponential``, seeded).
Each worker replica runs ``concurrency`` tasks at a time (the project's workers: one, since
``runtime.queue_worker`` runs the tasks of a queue one at a time and the emitted environment sets
no ``WORKER_BATCH_SIZE``) and takes tasks ``startup_seconds`` after it is added (image pull,
start, first receive). Messages in the queue are "visible"; taken ones are "in flight".

Within a second: arrivals, completions, the autoscaler's decision (at its own cadence, on the
state it can see), then free slots take visible messages.

Scale-in removes replicas not yet started first, then idle ones, never busy ones: ECS workers hold
task scale-in protection while busy, and a pod being scaled in drains its task (README "Long runs
survive scale-down"). Aggregate model: a replica counts as busy while the running tasks need it
(``ceil(running / concurrency)`` busy replicas).

Definitions:

- *first new worker*: the first time more replicas take tasks than at t=0;
- *drain time*: when the last task completes;
- *ideal*: ``ceil(tasks / (max_replicas * concurrency)) * mean_seconds + startup_seconds`` (every
  replica added at t=0; with an arrival spread, at least ``arrival_seconds + mean_seconds +
  startup``): a lower bound for fixed durations, the usual estimate for exponential ones.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass
from typing import Literal

from scaling.hpa import SYNC_PERIOD_SECONDS, HpaSpec, HpaState, hpa_step
from scaling.sources import EcsWorkerScaling, KedaWorkerScaling

Distribution = Literal["fixed", "exponential"]


@dataclass(frozen=True)
class Burst:
    tasks: int
    mean_seconds: float
    startup_seconds: float
    concurrency: int = 1
    arrival_seconds: float = 0.0
    distribution: Distribution = "fixed"
    seed: int = 0
    limit_seconds: int = 30 * 86_400


@dataclass(frozen=True)
class Result:
    first_new_worker: int | None
    drain_seconds: int | None
    ideal_seconds: float
    peak_replicas: int

    @property
    def ratio(self) -> float | None:
        if self.drain_seconds is None:
            return None
        return self.drain_seconds / self.ideal_seconds


def ideal_seconds(burst: Burst, max_replicas: int) -> float:
    batches = math.ceil(burst.tasks / (max_replicas * burst.concurrency))
    work = max(batches * burst.mean_seconds, burst.arrival_seconds + burst.mean_seconds)
    return work + burst.startup_seconds


class Pool:
    """The queue, the running tasks and the replicas (with the time each starts taking tasks)."""

    def __init__(self, burst: Burst, replicas: int) -> None:
        self.burst = burst
        rng = random.Random(burst.seed)  # noqa: S311 - a simulation, not cryptography
        if burst.distribution == "fixed":
            self.durations = [burst.mean_seconds] * burst.tasks
        else:
            self.durations = [rng.expovariate(1 / burst.mean_seconds) for _ in range(burst.tasks)]
        self.arrived = 0
        self.visible: deque[float] = deque()
        self.running: list[float] = []
        self.completed = 0
        self.workers: list[float] = [0.0] * replicas
        self.initial = replicas
        self.first_new_worker: int | None = None
        self.peak = replicas

    def arrive(self, t: int) -> None:
        if self.burst.arrival_seconds <= 0:
            due = self.burst.tasks
        else:
            due = min(
                self.burst.tasks,
                math.floor(self.burst.tasks * (t + 1) / self.burst.arrival_seconds),
            )
        while self.arrived < due:
            self.visible.append(self.durations[self.arrived])
            self.arrived += 1

    def finish(self, t: int) -> None:
        while self.running and self.running[0] <= t:
            heapq.heappop(self.running)
            self.completed += 1

    def ready(self, t: int) -> int:
        return sum(1 for at in self.workers if at <= t)

    def start(self, t: int) -> None:
        ready = self.ready(t)
        if self.first_new_worker is None and ready > self.initial:
            self.first_new_worker = t
        slots = ready * self.burst.concurrency
        while self.visible and len(self.running) < slots:
            heapq.heappush(self.running, t + self.visible.popleft())

    def in_flight(self) -> int:
        return len(self.running)

    def scale_to(self, replicas: int, t: int) -> None:
        current = len(self.workers)
        if replicas > current:
            self.workers.extend([t + self.burst.startup_seconds] * (replicas - current))
        elif replicas < current:
            self.workers.sort()
            remove = current - replicas
            while remove and self.workers and self.workers[-1] > t:
                self.workers.pop()
                remove -= 1
            busy = math.ceil(len(self.running) / self.burst.concurrency)
            idle = max(0, len(self.workers) - busy)
            for _ in range(min(remove, idle)):
                self.workers.pop()
        self.peak = max(self.peak, len(self.workers))

    def drained(self) -> bool:
        return self.completed == self.burst.tasks


def _run(pool: Pool, decide: _Decide, max_replicas: int) -> Result:
    burst = pool.burst
    drain: int | None = None
    for t in range(burst.limit_seconds):
        pool.arrive(t)
        pool.finish(t)
        if pool.drained():
            drain = t
            break
        decide(t)
        pool.start(t)
    return Result(pool.first_new_worker, drain, ideal_seconds(burst, max_replicas), pool.peak)


class _Decide:
    def __call__(self, t: int) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class EcsScaler(_Decide):
    """Application Auto Scaling on the ECS worker service, as the template configures it.

    Modelling assumptions (Application Auto Scaling user guide, "How target tracking scaling
    works" and "Step scaling policies"):

    - CloudWatch datapoints are 60 s periods (the customized metric has no period of its own;
      target tracking uses 1-minute metrics), available at the end of their minute, no ingestion
      lag (real SQS metrics lag 1-5 minutes: the figures are a lower bound).
      ``backlog / running`` uses the minute's averages of visible messages and running tasks
      (in-flight messages are not backlog); no datapoint while no task runs.
    - The target tracking's scale-out alarm fires on 3 consecutive datapoints above the target,
      the scale-in alarm on 15 consecutive datapoints below 90 % of it. On a firing alarm the
      new capacity is ``ceil(capacity * metric / target)`` within Min/MaxCapacity; scale-out at
      most once per ``ScaleOutCooldown``, scale-in at most once per ``ScaleInCooldown`` and not
      during a scale-out cooldown.
    - The step policy's alarm (``IF(running == 0, backlog, 0) >= threshold``, Maximum per
      period) adds ``ScalingAdjustment`` tasks when the last ``EvaluationPeriods`` datapoints
      breach, at most once per its ``Cooldown``.
    """

    def __init__(self, pool: Pool, settings: EcsWorkerScaling) -> None:
        self.pool = pool
        self.s = settings
        self.visible_sum = 0.0
        self.running_sum = 0.0
        self.samples = 0
        self.points: list[float | None] = []
        self.step_visible_max = 0
        self.step_running_max = 0
        self.step_points: list[float] = []
        self.last_out = -math.inf
        self.last_in = -math.inf
        self.last_step = -math.inf

    def __call__(self, t: int) -> None:
        pool, s = self.pool, self.s
        ready = pool.ready(t)
        self.visible_sum += len(pool.visible)
        self.running_sum += ready
        self.samples += 1
        self.step_visible_max = max(self.step_visible_max, len(pool.visible))
        self.step_running_max = max(self.step_running_max, ready)
        if (t + 1) % 60 == 0:
            running = self.running_sum / self.samples
            self.points.append(self.visible_sum / self.samples / running if running else None)
            self.visible_sum = self.running_sum = 0.0
            self.samples = 0
            self._track(t)
        if s.step_adjustment is not None and (t + 1) % s.alarm_period == 0:
            value = self.step_visible_max if self.step_running_max == 0 else 0
            self.step_points.append(float(value))
            self.step_visible_max = self.step_running_max = 0
            recent = self.step_points[-s.alarm_evaluation_periods :]
            if (
                len(recent) == s.alarm_evaluation_periods
                and all(v >= s.alarm_threshold for v in recent)
                and t - self.last_step >= s.step_cooldown
            ):
                current = len(pool.workers)
                pool.scale_to(min(s.max_capacity, current + s.step_adjustment), t)
                self.last_step = t

    def _track(self, t: int) -> None:
        pool, s = self.pool, self.s
        current = len(pool.workers)
        high = self.points[-3:]
        if len(high) == 3 and all(p is not None and p > s.target_backlog_per_task for p in high):
            metric = high[-1]
            assert metric is not None
            if t - self.last_out >= s.scale_out_cooldown:
                wanted = math.ceil(current * metric / s.target_backlog_per_task)
                wanted = min(s.max_capacity, max(s.min_capacity, wanted))
                if wanted > current:
                    pool.scale_to(wanted, t)
                    self.last_out = t
            return
        low = self.points[-15:]
        threshold = 0.9 * s.target_backlog_per_task
        if (
            len(low) == 15
            and all(p is not None and p < threshold for p in low)
            and t - self.last_in >= s.scale_in_cooldown
            and t - self.last_out >= s.scale_out_cooldown
        ):
            metric = low[-1]
            assert metric is not None
            wanted = max(s.min_capacity, math.ceil(current * metric / s.target_backlog_per_task))
            if wanted < current:
                pool.scale_to(wanted, t)
                self.last_in = t


class KedaScaler(_Decide):
    """A KEDA ScaledObject and the HPA it creates.

    Modelling assumptions (keda.sh "Scaling Deployments", the aws-sqs-queue scaler page, and
    the HPA algorithm of :mod:`scaling.hpa`):

    - KEDA polls the trigger every ``pollingInterval``: the trigger is active while the metric
      exceeds ``activationQueueLength``; an active trigger scales 0 -> 1, and after
      ``cooldownPeriod`` without activity KEDA scales to 0 (only with ``minReplicaCount: 0``).
    - From 1 replica on, the HPA (``minReplicas = max(1, minReplicaCount)``) runs every 15 s on
      the external metric with an ``AverageValue`` target of ``queueLength``: per-replica value =
      (visible + in-flight with ``scaleOnInFlight``) / replicas, the replicas being the
      Deployment's (started or not).
    - Cron triggers are ignored (the burst falls outside their windows).
    """

    def __init__(self, pool: Pool, settings: KedaWorkerScaling) -> None:
        self.pool = pool
        self.s = settings
        self.spec = HpaSpec(
            min_replicas=max(1, settings.min_replicas),
            max_replicas=settings.max_replicas,
            target=settings.queue_length,
            scale_up=settings.scale_up,
            scale_down=settings.scale_down,
        )
        self.state = HpaState()
        self.last_active = -math.inf

    def metric(self) -> int:
        pool = self.pool
        return len(pool.visible) + (pool.in_flight() if self.s.scale_on_in_flight else 0)

    def __call__(self, t: int) -> None:
        pool, s = self.pool, self.s
        total = self.metric()
        if t % s.polling_interval == 0:
            if total > s.activation_queue_length:
                self.last_active = t
                if not pool.workers:
                    pool.scale_to(1, t)
            elif s.min_replicas == 0 and pool.workers and t - self.last_active >= s.cooldown_period:
                pool.scale_to(0, t)
                self.state = HpaState()
        if t % SYNC_PERIOD_SECONDS == 0 and pool.workers:
            current = len(pool.workers)
            desired, self.state = hpa_step(current, total / current, self.spec, self.state, t)
            if desired != current:
                pool.scale_to(desired, t)


def simulate_ecs(settings: EcsWorkerScaling, burst: Burst) -> Result:
    pool = Pool(burst, settings.min_capacity)
    return _run(pool, EcsScaler(pool, settings), settings.max_capacity)


def simulate_keda(settings: KedaWorkerScaling, burst: Burst) -> Result:
    pool = Pool(burst, settings.min_replicas)
    return _run(pool, KedaScaler(pool, settings), settings.max_replicas)
