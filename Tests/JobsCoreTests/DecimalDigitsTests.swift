@testable import JobsCore
import Testing

@Suite("Decimal digits")
struct DecimalDigitsTests {
    @Test("plain digits are read, up to the type's largest value")
    func digitsAreRead() {
        #expect(Int(decimalDigits: "0") == 0)
        #expect(Int(decimalDigits: "0042") == 42)
        #expect(Int(decimalDigits: "9223372036854775807") == Int.max)
        #expect(UInt64(decimalDigits: "18446744073709551615") == UInt64.max)
        #expect(UInt8(decimalDigits: "255") == 255)
        #expect(Int64(decimalDigits: Array("1700000000123".utf8)[...]) == 1_700_000_000_123)
        #expect(Int(decimalDigits: "PROGRESS 12/20".dropFirst(9).prefix(2)) == 12)
    }

    @Test("signs, spaces, separators, other numerals and values too large are no number")
    func anythingElseIsRefused() {
        for text in ["", "+5", "-1", " 5", "5 ", "5.0", "1_000", "1e3", "0x1F", "٣", "５", "١٢"] {
            #expect(Int(decimalDigits: text) == nil, "\(text)")
        }
        #expect(Int(decimalDigits: "9223372036854775808") == nil)
        #expect(UInt8(decimalDigits: "256") == nil)
        #expect(UInt64(decimalDigits: "99999999999999999999") == nil)
        #expect(Int(decimalDigits: String(repeating: "9", count: 400)) == nil)
    }
}
