import CSpeculatePluginChannel
import Foundation
import SpeculateCore

#if canImport(Glibc)
    import Glibc
#endif

/// Watching the host between calls, and stopping it: why it ended, the group kill, the reap.
extension PluginHostProcess {
    /// CPU seconds the host's threads other than its main one have used so far.
    func otherThreadsCPU() -> Double? {
        let total = spec_process_cpu_seconds(pid, 0)
        let main = spec_process_cpu_seconds(pid, pid)
        return total >= 0 && main >= 0 ? total - main : nil
    }

    /// Before a request: whether the host's other threads kept the CPU busy while no call was
    /// open (since the last answer), judged over a second or more of such idle time. Time inside
    /// calls does not count, so a plugin may use worker threads while it proposes.
    func checkIdle() throws(PluginHostFailure) {
        guard let last = lastAnswer, let other = otherThreadsCPU() else { return }
        lastAnswer = nil
        idle.seconds += now() - last.time
        idle.otherCPU += other - last.otherCPU
        guard idle.seconds >= 1 else { return }
        let share = idle.otherCPU / idle.seconds
        idle = (0, 0)
        if share > configuration.spinningShare { throw fail(.spinning(share: share)) }
    }

    /// Stops the host for `reason` and returns the failure every later call reports.
    func fail(_ reason: PluginHostFailure) -> PluginHostFailure {
        if let failure { return failure }
        stop(because: reason)
        return failure!
    }

    func stop(because reason: PluginHostFailure) {
        guard failure == nil else { return }
        failure = output.hasFlooded ? .flooded(bytes: configuration.outputLimit) : reason
        reap()
    }

    /// What the end of the channel means: how the host ended, once it has.
    func gone(during: String) -> PluginHostFailure {
        guard let status = waitForExit(seconds: 0.5) else {
            return .malformed("closed its channel", during: during)
        }
        if output.hasFlooded { return .flooded(bytes: configuration.outputLimit) }
        if status.signaled {
            let limit = Int64(configuration.memoryLimitMB) * 1024 * 1024
            return .crashed(
                signal: status.code, during: during, nearMemoryLimit: limit > 0 && mappedBytes > limit * 3 / 4)
        }
        return .exited(status: status.code, during: during)
    }

    /// How the host ended, waiting up to `seconds`, without reaping it (its process id, and so
    /// its group's, stay reserved until `reap`).
    func waitForExit(seconds: Double) -> (signaled: Bool, code: Int32)? {
        let deadline = now() + seconds
        while true {
            var info = siginfo_t()
            if waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0, info._sifields._sigchld.si_pid == pid
            {
                let code = info._sifields._sigchld.si_status
                return (info.si_code != CLD_EXITED, code)
            }
            if now() >= deadline { return nil }
            usleep(5000)
        }
    }

    /// Kills the whole process group (the plugin's own children too) and reaps the host.
    func reap() {
        guard !reaped else { return }
        reaped = true
        kill(-pid, SIGKILL)
        output.close()
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    func release() {
        Glibc.close(channel)
        Glibc.close(lifeline)
        Glibc.close(sharedFile)
        munmap(shared, sharedSize)
        payload.deallocate()
    }

    func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
