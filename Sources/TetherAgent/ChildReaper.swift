import CLinux
import Foundation
import Glibc
public import H2

/// Notices task processes exiting, one thread for all of them instead of a blocked
/// thread per task: each child's pidfd (Linux 5.3+) sits in the epoll set of an H2
/// `EventLoop` and turns readable once the child has exited. The agent uses its
/// connection's loop, so an exit is reported and its event sent without waking another
/// thread; `shared` has a loop of its own.
///
/// Nothing is reaped here: the child stays a zombie, holding its pid and process group
/// id, until its owner reaps it (see `TaskRunner`).
public struct ChildReaper: Sendable {
    /// A reaper on a loop of its own (nil loop if its thread could not start: then each
    /// child is waited for on a thread of its own).
    public static let shared = ChildReaper(loop: try? EventLoop.start(name: "tether-reaper"))

    private let loop: EventLoop?

    /// A reaper whose exit handlers run on `loop`.
    public init(loop: EventLoop?) {
        self.loop = loop
    }

    /// Runs `body` once the child `pid` (not yet reaped) has exited: on the loop's
    /// thread, where it may block briefly while the loop's other work waits. Where a
    /// pidfd cannot be had (ENOSYS before Linux 5.3, EMFILE) or watched, a thread of its
    /// own waits in `waitid` instead and then runs `body`.
    func whenExited(_ pid: pid_t, _ body: @escaping @Sendable () -> Void) {
        let fd = tether_pidfd_open(pid)
        guard fd >= 0, let loop else {
            if fd >= 0 { close(fd) }
            return Self.waitOnThreadOfItsOwn(pid, body)
        }
        loop.execute { Watch.start(pid: pid, fd: fd, loop: loop, body: body) }
    }

    fileprivate static func waitOnThreadOfItsOwn(_ pid: pid_t, _ body: @escaping @Sendable () -> Void) {
        Thread {
            _ = try? TaskProcess.waitForExit(pid)
            body()
        }.start()
    }
}

/// One child's pidfd on the reaper's loop; it keeps itself alive until it fires.
private final class Watch: EventLoopSelectable {
    private let fd: Int32
    private let loop: EventLoop
    private let body: @Sendable () -> Void
    private var registration: EventLoop.RegistrationID?
    private var keepAlive: Watch?

    private init(fd: Int32, loop: EventLoop, body: @escaping @Sendable () -> Void) {
        self.fd = fd
        self.loop = loop
        self.body = body
    }

    /// On the loop's thread.
    static func start(pid: pid_t, fd: Int32, loop: EventLoop, body: @escaping @Sendable () -> Void) {
        let watch = Watch(fd: fd, loop: loop, body: body)
        do {
            watch.registration = try loop.register(fd, handler: watch)
            watch.keepAlive = watch
        } catch {
            close(fd)
            ChildReaper.waitOnThreadOfItsOwn(pid, body)
        }
    }

    func eventLoopReadable() { fire() }
    func eventLoopWritable() {}
    func eventLoopHangup() { fire() }

    private func fire() {
        guard let registration else { return }
        self.registration = nil
        loop.unregister(registration)
        close(fd)
        body()
        keepAlive = nil
    }
}
