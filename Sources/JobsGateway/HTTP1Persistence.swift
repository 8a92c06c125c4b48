import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1

/// Hummingbird's HTTP/1 server with persistent connections as RFC 9112 §9.3
/// has them for every client, HTTP/1.0 ones included, and `100 Continue`.
///
/// Hummingbird hands its routes Swift HTTP Types, which have no version, and
/// answers every request as HTTP/1.1, keeping the connection unless the
/// request says exactly `Connection: close`. An HTTP/1.0 client (ApacheBench,
/// `ab -k`, is one) then never learns that its connection stays open and waits
/// for a close that never comes. ``HTTP1Persistence`` sits where the version is
/// still known and says it for both sides.
struct PersistentHTTP1Channel: ServerChildChannel {
    let base: HTTP1Channel

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<HTTP1Channel.Value> {
        base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try pipeline.addHandler(HTTP1Persistence(), position: .after(decoder))
            return value
        }
    }

    func handle(value: HTTP1Channel.Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// `.http1(configuration:)`, with ``HTTP1Persistence`` in each connection's pipeline.
    static func persistentHTTP1(configuration: HTTP1Channel.Configuration) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            PersistentHTTP1Channel(base: HTTP1Channel(responder: responder, configuration: configuration))
        }
    }
}

/// Keeps a connection open exactly when the client may reuse it, and tells it
/// so; asks for a body the client holds back (`Expect: 100-continue`); and
/// gives the answer to bytes that are not HTTP a problem body.
///
/// - A request that doesn't keep its connection (HTTP/1.0 without
///   `Connection: keep-alive`; any `Connection: close`, in any case) reaches
///   Hummingbird with `Connection: close`, the one spelling after which it
///   closes; the answer says `Connection: close` too.
/// - An HTTP/1.0 client's answer is HTTP/1.0, so that a body of unknown length
///   is not chunked (1.0 has no chunking): with a length it says
///   `Connection: keep-alive` when the client asked for it; without one (an
///   event stream) it says `Connection: close`, and the connection closes after it,
///   which is how such a body ends in HTTP/1.0.
final class HTTP1Persistence: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private struct Exchange {
        var version: HTTPVersion
        var keepAlive: Bool
    }

    /// The requests not answered yet, oldest first (answers come in order).
    private var unanswered = CircularBuffer<Exchange>()
    /// Whether the answer being written ends the connection when it ends.
    private var closeAfterAnswer = false
    /// Why the bytes last read were not HTTP; Hummingbird answers that with an
    /// empty 400, which this handler gives a problem body (RFC 9457).
    private var parseError: HTTPParserError?
    /// The problem body of that answer, written before its end.
    private var problemBody: ByteBuffer?

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? HTTPParserError { parseError = error }
        context.fireErrorCaught(error)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var head) = unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        // A client that waits to be asked for its body (curl, .NET, PHP past a
        // size) would otherwise wait a second or more before sending it. Not to
        // HTTP/1.0 clients (RFC 9110 §10.1.1).
        if head.version == .http1_1, head.headers["expect"].contains(where: { $0.lowercased() == "100-continue" }) {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
        }
        // NIO's reading: 1.1 keeps unless `close`, 1.0 closes unless `keep-alive`, tokens in any case.
        let keepAlive = head.isKeepAlive
        if !keepAlive {
            head.headers.replaceOrAdd(name: "connection", value: "close")
        }
        unanswered.append(Exchange(version: head.version, keepAlive: keepAlive))
        context.fireChannelRead(wrapInboundOut(.head(head)))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head) where head.status.code >= 200 || head.status == .switchingProtocols:
            guard let exchange = unanswered.popFirst() else {
                // An answer with no request before it: Hummingbird's 400 for bytes
                // that are not HTTP, after which it closes the connection.
                if let error = parseError, head.status == .badRequest {
                    let (status, body) = Self.problem(for: error, allocator: context.channel.allocator)
                    head.status = status
                    head.headers.replaceOrAdd(name: "content-type", value: "application/problem+json")
                    head.headers.replaceOrAdd(name: "content-length", value: "\(body.readableBytes)")
                    problemBody = body
                    context.write(wrapOutboundOut(.head(head)), promise: promise)
                    return
                }
                break
            }
            // The server may close too (Hummingbird does when it shuts down gracefully).
            let serverCloses = head.headers["connection"].contains { $0.lowercased() == "close" }
            if exchange.version == .http1_0 {
                head.version = .http1_0
                if exchange.keepAlive, !serverCloses, !head.headers.contains(name: "content-length") {
                    closeAfterAnswer = true
                }
            }
            if !exchange.keepAlive || closeAfterAnswer || serverCloses {
                head.headers.replaceOrAdd(name: "connection", value: "close")
            } else if exchange.version == .http1_0 {
                head.headers.replaceOrAdd(name: "connection", value: "keep-alive")
            }
            context.write(wrapOutboundOut(.head(head)), promise: promise)
            return
        case .end where problemBody != nil:
            context.write(wrapOutboundOut(.body(.byteBuffer(problemBody.take()!))), promise: nil)
        case .end where closeAfterAnswer:
            closeAfterAnswer = false
            let written = promise ?? context.eventLoop.makePromise()
            let channel = context.channel
            written.futureResult.whenComplete { _ in channel.close(promise: nil) }
            context.write(data, promise: written)
            return
        default:
            break
        }
        context.write(data, promise: promise)
    }

    /// The answer to a request that could not be read: 431 for a header section
    /// over the decoder's limits, else 400, with a problem body.
    static func problem(for error: HTTPParserError, allocator: ByteBufferAllocator) -> (HTTPResponseStatus, ByteBuffer) {
        let problem = error == .headerOverflow
            ? ProblemDetails.http(.requestHeaderFieldsTooLarge, detail: "the request's header section is larger than the gateway reads")
            : ProblemDetails.http(.badRequest, detail: "the request could not be read as HTTP/1.1 (\(error))")
        let bytes = (try? JSONEncoder().encode(problem)) ?? Data()
        return (HTTPResponseStatus(statusCode: problem.statusCode), allocator.buffer(bytes: bytes))
    }
}
