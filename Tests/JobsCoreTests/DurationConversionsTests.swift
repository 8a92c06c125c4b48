import JobsCore
import Testing

@Suite("Duration conversions")
struct DurationConversionsTests {
    @Test("whole milliseconds round toward zero, on both sides of zero")
    func wholeMilliseconds() {
        #expect(Duration.milliseconds(1500).wholeMilliseconds == 1500)
        #expect((Duration.seconds(2) + .microseconds(999)).wholeMilliseconds == 2000)
        #expect(Duration.milliseconds(-1500).wholeMilliseconds == -1500)
        #expect((Duration.zero - .microseconds(1999)).wholeMilliseconds == -1)
        #expect(Duration.zero.wholeMilliseconds == 0)
    }

    @Test("durations beyond Int's milliseconds clamp instead of trapping")
    func clamps() {
        #expect(Duration.seconds(Int64.max).wholeMilliseconds == .max)
        #expect(Duration.seconds(Int64.min).wholeMilliseconds == .min)
        #expect(Duration.seconds(Int64.max / 1000).wholeMilliseconds == Int(Int64.max / 1000) * 1000)
    }

    @Test("time intervals keep fractions of a second")
    func timeInterval() {
        #expect(Duration.milliseconds(2500).timeInterval == 2.5)
        #expect(Duration.milliseconds(-250).timeInterval == -0.25)
    }
}
