"""Rollback after a non-finite loss: parameters and optimizer state come back from the
snapshot taken before the step, on its own schedule (not print_freq's)."""
import numpy as np
import pytest

from optimus.errors import ConfigError
from optimus.optim import SGD, Adam
from optimus.train import Driver, FinishAfter
from training_setups import X, Y, classifier


def batches(nan_at=(), count=6):
    """``count`` batches of the same 8 rows; those in ``nan_at`` hold a NaN (a NaN loss)."""
    out = []
    for i in range(count):
        data = X[:8].copy()
        if i in nan_at:
            data[0, 0] = np.nan
        out.append({"data": data, "labels": Y[:8]})
    return out


def clean_run(step_rule, steps):
    ref, _ = classifier(step_rule)
    Driver(ref, verbose=0).fit(batches(count=steps), {"learning_rate": 0.05},
                               max_iter=steps - 1)
    return ref


@pytest.mark.parametrize("step_rule", [SGD(momentum=0.9), Adam()], ids=["momentum", "adam"])
def test_a_rollback_restores_the_state_from_before_the_bad_step(step_rule, capsys):
    trainer, _ = classifier(step_rule)
    driver = Driver(trainer, extensions=[FinishAfter(epochs=1)])
    stats = driver.fit(batches(nan_at=[3]), {"learning_rate": 0.05}, nan_exceptions=1,
                       nan_snapshot_every=1, print_freq=10**9)
    assert "Non-finite loss nan at iteration 3: restored the parameters and optimizer " \
           "state from before iteration 3 (0 recoveries left)" in capsys.readouterr().out
    assert list(stats["iteration"]) == [0, 1, 2, 3, 4]  # the bad batch takes no iteration
    assert driver.stop_reason == "finished after 1 epochs"
    # five clean steps on the same data: the NaN step left no trace, in the moments either
    ref = clean_run(type(step_rule)(**step_rule.get_config()), 5)
    for name in ref.params:
        np.testing.assert_array_equal(trainer.params[name].value, ref.params[name].value)


def test_snapshots_every_n_steps_lose_the_steps_since_the_last_one():
    trainer, _ = classifier(Adam())
    driver = Driver(trainer, extensions=[FinishAfter(epochs=1)], verbose=0)
    driver.fit(batches(nan_at=[3]), {"learning_rate": 0.05}, nan_exceptions=1,
               nan_snapshot_every=2)
    assert driver.nan_recovery.snapshot_iteration == 2  # none once no recovery is left
    # snapshot before step 2; steps 2 and the NaN one are lost; then two more steps
    ref = clean_run(Adam(), 4)
    for name in ref.params:
        np.testing.assert_array_equal(trainer.params[name].value, ref.params[name].value)


def test_the_budget_runs_out_and_print_freq_plays_no_part():
    trainer, _ = classifier()
    driver = Driver(trainer, extensions=[FinishAfter(epochs=1)], verbose=0)
    driver.fit(batches(nan_at=[1, 4]), {"learning_rate": 0.05}, nan_exceptions=1,
               nan_snapshot_every=1, print_freq=0)
    assert driver.stop_reason == "non-finite loss nan at iteration 3"
    assert driver.nan_recovery.left == 0


def test_by_default_a_snapshot_every_10_steps():
    trainer, _ = classifier(Adam())
    driver = Driver(trainer, extensions=[FinishAfter(epochs=1)], verbose=0)
    driver.fit(batches(nan_at=[13], count=16), {"learning_rate": 0.05}, nan_exceptions=1)
    assert driver.nan_recovery.snapshot_iteration == 10
    ref = clean_run(Adam(), 12)  # 10 steps, the rollback, then 2 more (14 and 15)
    for name in ref.params:
        np.testing.assert_array_equal(trainer.params[name].value, ref.params[name].value)


def test_no_snapshot_without_nan_exceptions_and_bad_settings_are_named():
    trainer, _ = classifier()
    driver = Driver(trainer, verbose=0)
    driver.fit(batches(), {"learning_rate": 0.05}, max_iter=3)
    assert driver.nan_recovery.snapshot_iteration is None
    with pytest.raises(ConfigError, match="nan_snapshot_every"):
        driver.fit(batches(), {"learning_rate": 0.05}, max_iter=3, nan_exceptions=1,
                   nan_snapshot_every=0)
    with pytest.raises(ConfigError, match="nan_exceptions"):
        driver.fit(batches(), {"learning_rate": 0.05}, max_iter=3, nan_exceptions=-1)
