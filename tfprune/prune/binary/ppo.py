"""The PPO controller of ARSP: per-layer keep ratios (reservoir sizes) chosen by tf-agents' PPOClipAgent.

The only module of tfprune importing ``tf_agents`` (the ``tfprune[rl]`` extra).

:class:`LayerRatioEnvironment` walks the layers one step each, as AMC does (He et al.
2018). At layer ``i`` it observes (layer id, mean |w|, mean |dL/dw|, the layer's current
sparsity, the layer's size; the three magnitudes scaled by their largest value over the
layers); the action ``a`` in [-1, 1] moves the layer's reservoir size from its initial
keep ratio by ``a * max_step`` (clipped to 0-100%). After the last layer the sampled
network is evaluated: the reward is ``accuracy - lam * density`` (density: kept share of
the layers' weights; the seed's ``- lam * sparsity`` would punish pruning), 0 before.
The agent discounts by 0.99. :func:`search` trains the agent and returns the best
ratios any episode reached (the stochastic episodes and a final greedy one).

tf-agents takes no random generator of its own: its networks' initial weights and the
collect policy's actions come from the global random states of Python (through Keras),
NumPy and TensorFlow. :func:`search` seeds them for its own duration and then puts the
caller's back: Python's, NumPy's and Keras' exactly, TensorFlow's as its global seed
(``tf.random.set_seed`` cannot rewind a sequence, so the caller's restarts).

Example:
    >>> def accuracy(ratios):  # a toy: accuracy peaks at keep ratios 0.2 and 0.9
    ...     return 1.0 - float(np.sum((ratios - [0.2, 0.9]) ** 2))
    >>> result = search(accuracy, np.ones((2, 2)), sizes=[10, 10], episodes=8, seed=0)
    >>> len(result.history), sorted(result.best_ratios)
    (9, [0, 1])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from tfprune import keras_model

#: One line for a stack without tf-agents (tf-agents 0.19, its newest release, pins TensorFlow
#: Probability 0.23 and pygame 2.1.3: TensorFlow 2.15 and Python 3.11 only).
NEEDS_TF_AGENTS = ("ARSP's 'ppo' and 'random' controllers need tf-agents 0.19, which installs only on the "
                   "pinned stack (Python 3.11, TensorFlow 2.15, pip install 'tfprune[rl]'); elsewhere give "
                   "the keep ratios yourself: controller='fixed', keep=...")

try:
    from tf_agents.agents.ppo import ppo_clip_agent
    from tf_agents.drivers import dynamic_episode_driver
    from tf_agents.environments import py_environment, tf_py_environment
    from tf_agents.networks import actor_distribution_network, value_network
    from tf_agents.replay_buffers import tf_uniform_replay_buffer
    from tf_agents.specs import array_spec
    from tf_agents.trajectories import time_step as ts
except ImportError as error:
    raise ImportError(NEEDS_TF_AGENTS) from error

OBSERVATION = ("layer_id", "mean_abs_weight", "mean_abs_grad", "sparsity", "size")


@dataclass
class Episode:
    """One evaluated set of keep ratios."""

    ratios: list[float]
    accuracy: float
    density: float
    reward: float
    greedy: bool = False


class LayerRatioEnvironment(py_environment.PyEnvironment):
    """Walks the layers; the action moves each layer's keep ratio; reward at the end.

    Args:
        evaluate: keep ratios (one per layer, float array) -> validation accuracy.
        features: ``(layers, 2)`` mean |w| and mean |dL/dw| per layer.
        sizes: prunable items per layer (weights or filters); weights the density.
        initial: the keep ratio an action moves from (one float or one per layer).
        max_step: how far an action of ±1 moves a ratio.
        lam: the density penalty of the reward.

    Example:
        >>> env = LayerRatioEnvironment(lambda r: 1.0, np.ones((2, 2)), sizes=[1, 3])
        >>> step = env.reset(); step = env.step(np.array([1.0], np.float32))
        >>> step = env.step(np.array([-1.0], np.float32))
        >>> env.history[-1].ratios, round(env.history[-1].reward, 3)
        ([1.0, 0.0], 0.975)
    """

    def __init__(
        self,
        evaluate: Callable[[np.ndarray], float],
        features: Any,
        sizes: Sequence[int],
        initial: float | Sequence[float] = 0.5,
        max_step: float = 0.5,
        lam: float = 0.1,
    ) -> None:
        super().__init__()
        features = np.asarray(features, dtype=np.float64)
        sizes = np.asarray(sizes, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != 2 or len(features) == 0:
            raise ValueError(f"features must be (layers, 2): mean |w| and mean |grad| per layer, got {features.shape}")
        if sizes.shape != (len(features),) or (sizes <= 0).any():
            raise ValueError(f"sizes must give a positive size for each of the {len(features)} layers")
        self._initial = np.broadcast_to(np.asarray(initial, dtype=np.float64), sizes.shape).copy()
        if ((self._initial < 0) | (self._initial > 1)).any() or not 0 < max_step <= 1 or lam < 0:
            raise ValueError("initial keep ratios must lie in [0, 1], max_step in (0, 1] and lam >= 0")
        self._evaluate, self._sizes, self._max_step, self._lam = evaluate, sizes, max_step, lam
        scaled = features / np.maximum(features.max(axis=0), 1e-12)
        self._features = np.column_stack([scaled, sizes / sizes.max()])
        self.history: list[Episode] = []
        self.greedy = False
        self._ratios = self._initial.copy()
        self._layer = 0

    def observation_spec(self) -> Any:
        return array_spec.ArraySpec((len(OBSERVATION),), np.float32, name="observation")

    def action_spec(self) -> Any:
        return array_spec.BoundedArraySpec((1,), np.float32, -1.0, 1.0, name="action")

    def _observation(self) -> np.ndarray:
        i = min(self._layer, len(self._sizes) - 1)
        layer_id = i / max(len(self._sizes) - 1, 1)
        mean_w, mean_g, size = self._features[i]
        return np.array([layer_id, mean_w, mean_g, 1.0 - self._ratios[i], size], dtype=np.float32)

    def _reset(self) -> Any:
        self._ratios, self._layer = self._initial.copy(), 0
        return ts.restart(self._observation())

    def _step(self, action: Any) -> Any:
        if self._layer >= len(self._sizes):
            return self.reset()
        move = float(np.clip(np.asarray(action).ravel()[0], -1.0, 1.0)) * self._max_step
        self._ratios[self._layer] = float(np.clip(self._initial[self._layer] + move, 0.0, 1.0))
        self._layer += 1
        if self._layer < len(self._sizes):
            return ts.transition(self._observation(), reward=0.0, discount=1.0)
        episode = self.score(self._ratios)
        episode.greedy = self.greedy
        self.history.append(episode)
        return ts.termination(self._observation(), reward=episode.reward)

    def score(self, ratios: np.ndarray) -> Episode:
        """Evaluate ``ratios``: accuracy, density and the reward (not recorded)."""
        accuracy = float(self._evaluate(np.asarray(ratios, dtype=np.float64)))
        density = float(np.dot(ratios, self._sizes) / self._sizes.sum())
        return Episode([float(r) for r in ratios], accuracy, density, accuracy - self._lam * density)


@dataclass
class SearchResult:
    """What :func:`search` found: the best episode's ratios, every episode, the time taken."""

    best: Episode
    history: list[Episode]
    seconds: float
    controller: str
    losses: list[float] = field(default_factory=list)

    @property
    def best_ratios(self) -> dict[int, float]:
        """Layer index -> keep ratio of the best episode."""
        return dict(enumerate(self.best.ratios))


def search(
    evaluate: Callable[[np.ndarray], float],
    features: Any,
    sizes: Sequence[int],
    episodes: int = 24,
    episodes_per_iteration: int = 4,
    initial: float | Sequence[float] = 0.5,
    max_step: float = 0.5,
    lam: float = 0.1,
    discount: float = 0.99,
    learning_rate: float = 3e-3,
    num_epochs: int = 10,
    seed: int = 0,
    log_dir: str | None = None,
    layer_names: Sequence[str] | None = None,
) -> SearchResult:
    """Train a PPOClipAgent on :class:`LayerRatioEnvironment` for ``episodes`` episodes.

    Episodes are collected ``episodes_per_iteration`` at a time, then the agent
    trains on them (``num_epochs`` passes, clipping 0.2, GAE). A last, greedy
    episode runs the trained policy's mean action. With ``log_dir``, reward,
    accuracy, density and every layer's ratio per episode and the agent's loss go
    to TensorBoard.

    Example:
        >>> result = search(lambda r: 0.5, np.ones((1, 2)), sizes=[4], episodes=4, seed=1)
        >>> result.controller, len(result.history)
        ('ppo', 5)
    """
    _check_budget(episodes, episodes_per_iteration)
    with keras_model.seeded(seed):
        return _search(evaluate, features, sizes, episodes, episodes_per_iteration, initial, max_step, lam,
                       discount, learning_rate, num_epochs, seed, log_dir, layer_names)


def _search(evaluate: Callable[[np.ndarray], float], features: Any, sizes: Sequence[int], episodes: int,
            episodes_per_iteration: int, initial: float | Sequence[float], max_step: float, lam: float,
            discount: float, learning_rate: float, num_epochs: int, seed: int, log_dir: str | None,
            layer_names: Sequence[str] | None) -> SearchResult:
    start = time.perf_counter()
    py_env = LayerRatioEnvironment(evaluate, features, sizes, initial, max_step, lam)
    env = tf_py_environment.TFPyEnvironment(py_env)
    agent = _agent(env, discount, learning_rate, num_epochs, seed)
    buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(
        agent.collect_data_spec, batch_size=env.batch_size, max_length=(len(py_env._sizes) + 1) * episodes + 8)
    driver = dynamic_episode_driver.DynamicEpisodeDriver(
        env, agent.collect_policy, observers=[buffer.add_batch], num_episodes=episodes_per_iteration)
    writer = tf.summary.create_file_writer(log_dir) if log_dir else None
    losses, logged = [], 0
    for _ in range(int(np.ceil(episodes / episodes_per_iteration))):
        driver.run()
        losses.append(float(agent.train(buffer.gather_all()).loss))
        buffer.clear()
        logged = _log(writer, py_env.history, logged, layer_names, losses[-1])
    py_env.greedy = True
    dynamic_episode_driver.DynamicEpisodeDriver(env, agent.policy, num_episodes=1).run()
    _log(writer, py_env.history, logged, layer_names, None)
    best = max(py_env.history, key=lambda episode: episode.reward)
    return SearchResult(best, list(py_env.history), time.perf_counter() - start, "ppo", losses)


def random_search(
    evaluate: Callable[[np.ndarray], float],
    features: Any,
    sizes: Sequence[int],
    episodes: int = 24,
    initial: float | Sequence[float] = 0.5,
    max_step: float = 0.5,
    lam: float = 0.1,
    seed: int = 0,
    log_dir: str | None = None,
    layer_names: Sequence[str] | None = None,
) -> SearchResult:
    """The ablation of the controller: ``episodes`` uniformly random actions, the best kept.

    Example:
        >>> result = random_search(lambda r: 0.5, np.ones((1, 2)), sizes=[4], episodes=3)
        >>> result.controller, len(result.history)
        ('random', 3)
    """
    _check_budget(episodes, 1)
    start = time.perf_counter()
    env = LayerRatioEnvironment(evaluate, features, sizes, initial, max_step, lam)
    rng = np.random.default_rng(seed)
    for _ in range(episodes):
        env.reset()
        for _ in range(len(sizes)):
            env.step(rng.uniform(-1.0, 1.0, size=1).astype(np.float32))
    writer = tf.summary.create_file_writer(log_dir) if log_dir else None
    _log(writer, env.history, 0, layer_names, None)
    best = max(env.history, key=lambda episode: episode.reward)
    return SearchResult(best, list(env.history), time.perf_counter() - start, "random")


# --- helpers --------------------------------------------------------------------------------


def _agent(env: Any, discount: float, learning_rate: float, num_epochs: int, seed: int) -> Any:
    actor = actor_distribution_network.ActorDistributionNetwork(
        env.observation_spec(), env.action_spec(), fc_layer_params=(32, 32), seed=seed)
    value = value_network.ValueNetwork(env.observation_spec(), fc_layer_params=(32, 32))
    agent = ppo_clip_agent.PPOClipAgent(
        env.time_step_spec(), env.action_spec(),
        optimizer=tf.keras.optimizers.Adam(learning_rate),
        actor_net=actor, value_net=value,
        importance_ratio_clipping=0.2, discount_factor=discount, lambda_value=0.95, use_gae=True,
        num_epochs=num_epochs, normalize_observations=False, normalize_rewards=False,
        train_step_counter=tf.Variable(0, dtype=tf.int64))
    agent.initialize()
    return agent


def _log(writer: Any, history: list[Episode], logged: int, names: Sequence[str] | None, loss: float | None) -> int:
    if writer is None:
        return len(history)
    with writer.as_default():
        for index in range(logged, len(history)):
            episode = history[index]
            tf.summary.scalar("reward", episode.reward, step=index)
            tf.summary.scalar("accuracy", episode.accuracy, step=index)
            tf.summary.scalar("density", episode.density, step=index)
            for i, ratio in enumerate(episode.ratios):
                tf.summary.scalar(f"ratio/{names[i] if names else i}", ratio, step=index)
        if loss is not None:
            tf.summary.scalar("ppo_loss", loss, step=len(history))
    writer.flush()
    return len(history)


def _check_budget(episodes: int, per_iteration: int) -> None:
    for name, value in (("episodes", episodes), ("episodes_per_iteration", per_iteration)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer")
