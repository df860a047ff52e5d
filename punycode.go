package linking

import (
	"errors"
	"math"
	"strings"
	"unicode/utf8"
)

// Punycode (RFC 3492), for IDNA A-labels. Labels are at most 63 characters,
// which keeps every intermediate value far from overflow; decoding still
// checks, since its input is untrusted.

const (
	punyBase        = 36
	punyTMin        = 1
	punyTMax        = 26
	punySkew        = 38
	punyDamp        = 700
	punyInitialBias = 72
	punyInitialN    = 128
)

var errPunycode = errors.New("linking: malformed punycode")

func punyAdapt(delta, numPoints int32, first bool) int32 {
	if first {
		delta /= punyDamp
	} else {
		delta /= 2
	}
	delta += delta / numPoints
	k := int32(0)
	for delta > ((punyBase-punyTMin)*punyTMax)/2 {
		delta /= punyBase - punyTMin
		k += punyBase
	}
	return k + (punyBase-punyTMin+1)*delta/(delta+punySkew)
}

func punyThreshold(k, bias int32) int32 {
	t := k - bias
	if t < punyTMin {
		return punyTMin
	}
	if t > punyTMax {
		return punyTMax
	}
	return t
}

func punyDigit(d int32) byte {
	if d < 26 {
		return byte('a' + d)
	}
	return byte('0' + d - 26)
}

// punyEncode encodes a label of at most 63 characters, without the "xn--".
func punyEncode(s string) string {
	runes := []rune(s)
	var out []byte
	for _, r := range runes {
		if r < utf8.RuneSelf {
			out = append(out, byte(r))
		}
	}
	b := int32(len(out))
	h := b
	if b > 0 {
		out = append(out, '-')
	}
	n, delta, bias := int32(punyInitialN), int32(0), int32(punyInitialBias)
	for h < int32(len(runes)) {
		m := int32(math.MaxInt32)
		for _, r := range runes {
			if r >= n && r < m {
				m = r
			}
		}
		delta += (m - n) * (h + 1)
		n = m
		for _, r := range runes {
			if r < n {
				delta++
			}
			if r != n {
				continue
			}
			q := delta
			for k := int32(punyBase); ; k += punyBase {
				t := punyThreshold(k, bias)
				if q < t {
					break
				}
				out = append(out, punyDigit(t+(q-t)%(punyBase-t)))
				q = (q - t) / (punyBase - t)
			}
			out = append(out, punyDigit(q))
			bias = punyAdapt(delta, h+1, h == b)
			delta = 0
			h++
		}
		delta++
		n++
	}
	return string(out)
}

// punyDecode decodes a label without its "xn--", refusing malformed input and
// results longer than 63 characters.
func punyDecode(s string) (string, error) {
	var out []rune
	pos := 0
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		for j := 0; j < i; j++ {
			if s[j] >= utf8.RuneSelf {
				return "", errPunycode
			}
			out = append(out, rune(s[j]))
		}
		pos = i + 1
	}
	n, bias, i := int32(punyInitialN), int32(punyInitialBias), int32(0)
	for pos < len(s) {
		oldi, w := i, int32(1)
		for k := int32(punyBase); ; k += punyBase {
			if pos == len(s) {
				return "", errPunycode
			}
			c := s[pos]
			pos++
			var digit int32
			switch {
			case 'a' <= c && c <= 'z':
				digit = int32(c - 'a')
			case 'A' <= c && c <= 'Z':
				digit = int32(c - 'A')
			case '0' <= c && c <= '9':
				digit = int32(c-'0') + 26
			default:
				return "", errPunycode
			}
			if digit > (math.MaxInt32-i)/w {
				return "", errPunycode
			}
			i += digit * w
			t := punyThreshold(k, bias)
			if digit < t {
				break
			}
			if w > math.MaxInt32/(punyBase-t) {
				return "", errPunycode
			}
			w *= punyBase - t
		}
		x := int32(len(out) + 1)
		bias = punyAdapt(i-oldi, x, oldi == 0)
		if i/x > math.MaxInt32-n {
			return "", errPunycode
		}
		n += i / x
		i %= x
		if n > utf8.MaxRune || (0xD800 <= n && n <= 0xDFFF) || len(out) >= 63 {
			return "", errPunycode
		}
		out = append(out[:i], append([]rune{n}, out[i:]...)...)
		i++
	}
	return string(out), nil
}
