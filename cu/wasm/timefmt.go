package wasm

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The emscripten glue implements the C time functions in JavaScript with
// Date. Process code sees their output (os.date), so we reproduce the glue's
// algorithms, quirks included, with the host time zone fixed to UTC: that is
// what a reference CU running with TZ=UTC computes, and the only choice that
// does not leak the host's zone into process state.

// tm is C's struct tm (wasm32 layout: eleven 4-byte fields, tm_zone a pointer).
type tm struct {
	sec, min, hour, mday, mon, year, wday, yday, isdst, gmtoff int32
	zone                                                       string
}

// jsMaxTime is the largest |ms| a JS Date can hold; beyond it every getter
// yields NaN, which a store to HEAP32 turns into 0.
const jsMaxTime = 8.64e15

// jsDate mirrors `new Date(y, m, d, h, mi, s)` in a UTC zone, including the
// rule that years 0..99 mean 1900..1999.
func jsDate(y, m, d, h, mi, s int64) (time.Time, bool) {
	if y >= 0 && y <= 99 {
		y += 1900
	}
	// time.Date normalises overflowing fields the same way MakeDay/MakeTime do.
	if y < -300000 || y > 300000 {
		return time.Time{}, false
	}
	t := time.Date(int(y), time.Month(m+1), 1, 0, 0, 0, 0, time.UTC)
	t = t.Add(time.Duration(d-1)*24*time.Hour + time.Duration(h)*time.Hour +
		time.Duration(mi)*time.Minute + time.Duration(s)*time.Second)
	if ms := t.UnixMilli(); math.Abs(float64(ms)) > jsMaxTime {
		return time.Time{}, false
	}
	return t, true
}

// gmtime fills what the glue's _gmtime_js writes (tm_sec … tm_yday).
func gmtime(secs int64) (tm, bool) {
	if math.Abs(float64(secs)*1000) > jsMaxTime {
		return tm{}, false
	}
	t := time.Unix(secs, 0).UTC()
	return tm{
		sec: int32(t.Second()), min: int32(t.Minute()), hour: int32(t.Hour()),
		mday: int32(t.Day()), mon: int32(t.Month()) - 1, year: int32(t.Year() - 1900),
		wday: int32(t.Weekday()), yday: int32(t.YearDay() - 1),
	}, true
}

// mktime mirrors _mktime_js: normalises the fields in place and returns the
// epoch seconds, or -1 when the date is out of JS range.
func mktime(v *tm) int64 {
	t, ok := jsDate(int64(v.year)+1900, int64(v.mon), int64(v.mday), int64(v.hour), int64(v.min), int64(v.sec))
	if v.isdst < 0 {
		v.isdst = 0 // UTC has no daylight saving time
	}
	if !ok {
		v.wday, v.yday, v.sec, v.min, v.hour, v.mday, v.mon, v.year = 0, 0, 0, 0, 0, 0, 0, 0
		return -1
	}
	v.wday = int32(t.Weekday())
	v.yday = int32(t.YearDay() - 1)
	v.sec, v.min, v.hour = int32(t.Second()), int32(t.Minute()), int32(t.Hour())
	v.mday, v.mon, v.year = int32(t.Day()), int32(t.Month())-1, int32(t.Year()-1900)
	return t.Unix()
}

var (
	weekdays = [...]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	months   = [...]string{"January", "February", "March", "April", "May", "June", "July",
		"August", "September", "October", "November", "December"}
	monthDaysRegular = [...]int64{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
	monthDaysLeap    = [...]int64{31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
)

// strftimeRules1 are the glue's first-pass textual expansions, applied in
// this order to the whole pattern.
var strftimeRules1 = [][2]string{
	{"%c", "%a %b %d %H:%M:%S %Y"}, {"%D", "%m/%d/%y"}, {"%F", "%Y-%m-%d"}, {"%h", "%b"},
	{"%r", "%I:%M:%S %p"}, {"%R", "%H:%M"}, {"%T", "%H:%M:%S"}, {"%x", "%m/%d/%y"},
	{"%X", "%H:%M:%S"}, {"%Ec", "%c"}, {"%EC", "%C"}, {"%Ex", "%m/%d/%y"}, {"%EX", "%H:%M:%S"},
	{"%Ey", "%y"}, {"%EY", "%Y"}, {"%Od", "%d"}, {"%Oe", "%e"}, {"%OH", "%H"}, {"%OI", "%I"},
	{"%Om", "%m"}, {"%OM", "%M"}, {"%OS", "%S"}, {"%Ou", "%u"}, {"%OU", "%U"}, {"%OV", "%V"},
	{"%Ow", "%w"}, {"%OW", "%W"}, {"%Oy", "%y"},
}

// strftimeRules2 is the order in which the glue substitutes conversions.
var strftimeRules2 = []string{"%a", "%A", "%b", "%B", "%C", "%d", "%e", "%g", "%G", "%H", "%I",
	"%j", "%m", "%M", "%n", "%p", "%S", "%t", "%u", "%U", "%V", "%w", "%W", "%y", "%Y", "%z", "%Z", "%%"}

// errBadTm is raised (as a trap, like the glue's TypeError) when %a/%A/%b/%B
// index outside their tables.
type errBadTm struct{}

func (errBadTm) Error() string { return "strftime: tm_wday or tm_mon out of range" }

func isLeap(y int64) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func lead(s string, n int, c byte) string {
	for len(s) < n { // JS string length; our values are ASCII
		s = string(c) + s
	}
	return s
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// jsNumber formats a float the way JS Number#toString does for the
// magnitudes strftime can produce.
func jsNumber(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func firstWeekStart(janFourth time.Time) time.Time {
	y := int64(janFourth.Year())
	var t time.Time
	switch janFourth.Weekday() {
	case 0:
		t, _ = jsDate(y-1, 11, 29, 0, 0, 0)
	case 1:
		return janFourth
	case 2:
		t, _ = jsDate(y, 0, 3, 0, 0, 0)
	case 3:
		t, _ = jsDate(y, 0, 2, 0, 0, 0)
	case 4:
		t, _ = jsDate(y, 0, 1, 0, 0, 0)
	case 5:
		t, _ = jsDate(y-1, 11, 31, 0, 0, 0)
	case 6:
		t, _ = jsDate(y-1, 11, 30, 0, 0, 0)
	}
	return t
}

func compareByDay(a, b time.Time) int {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	switch {
	case ay != by:
		return cmp(ay, by)
	case am != bm:
		return cmp(int(am), int(bm))
	}
	return cmp(ad, bd)
}

func cmp(a, b int) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

func weekBasedYear(v *tm) int64 {
	this, _ := jsDate(int64(v.year)+1900, 0, 1, 0, 0, 0)
	if v.yday > 0 {
		this = this.AddDate(0, 0, int(v.yday))
	}
	y := int64(this.Year())
	jan4, _ := jsDate(y, 0, 4, 0, 0, 0)
	jan4next, _ := jsDate(y+1, 0, 4, 0, 0, 0)
	if compareByDay(firstWeekStart(jan4), this) <= 0 {
		if compareByDay(firstWeekStart(jan4next), this) <= 0 {
			return y + 1
		}
		return y
	}
	return y - 1
}

func strftimeConv(rule string, v *tm) string {
	year := int64(v.year) + 1900
	switch rule {
	case "%a", "%A":
		if v.wday < 0 || v.wday > 6 {
			panic(errBadTm{})
		}
		if rule == "%a" {
			return weekdays[v.wday][:3]
		}
		return weekdays[v.wday]
	case "%b", "%B":
		if v.mon < 0 || v.mon > 11 {
			panic(errBadTm{})
		}
		if rule == "%b" {
			return months[v.mon][:3]
		}
		return months[v.mon]
	case "%C":
		return lead(itoa(int64(int32(year/100))), 2, '0')
	case "%d":
		return lead(itoa(int64(v.mday)), 2, '0')
	case "%e":
		return lead(itoa(int64(v.mday)), 2, ' ')
	case "%g":
		s := itoa(weekBasedYear(v))
		if len(s) < 2 {
			return ""
		}
		return s[2:]
	case "%G":
		return itoa(weekBasedYear(v))
	case "%H":
		return lead(itoa(int64(v.hour)), 2, '0')
	case "%I":
		h := int64(v.hour)
		if h == 0 {
			h = 12
		} else if h > 12 {
			h -= 12
		}
		return lead(itoa(h), 2, '0')
	case "%j":
		days := monthDaysRegular[:]
		if isLeap(year) {
			days = monthDaysLeap[:]
		}
		sum, ok := int64(0), true
		for i := int64(0); i <= int64(v.mon)-1; i++ {
			if i >= 12 {
				ok = false // the glue adds undefined: NaN
				break
			}
			sum += days[i]
		}
		if !ok {
			return "NaN"
		}
		return lead(itoa(int64(v.mday)+sum), 3, '0')
	case "%m":
		return lead(itoa(int64(v.mon)+1), 2, '0')
	case "%M":
		return lead(itoa(int64(v.min)), 2, '0')
	case "%n":
		return "\n"
	case "%p":
		if v.hour >= 0 && v.hour < 12 {
			return "AM"
		}
		return "PM"
	case "%S":
		return lead(itoa(int64(v.sec)), 2, '0')
	case "%t":
		return "\t"
	case "%u":
		if v.wday == 0 {
			return "7"
		}
		return itoa(int64(v.wday))
	case "%U":
		return lead(itoa(floorDiv(int64(v.yday)+7-int64(v.wday), 7)), 2, '0')
	case "%V":
		return lead(itoa(isoWeek(v)), 2, '0')
	case "%w":
		return itoa(int64(v.wday))
	case "%W":
		return lead(itoa(floorDiv(int64(v.yday)+7-jsMod(int64(v.wday)+6, 7), 7)), 2, '0')
	case "%y":
		s := itoa(year)
		if len(s) < 2 {
			return ""
		}
		return s[2:]
	case "%Y":
		return itoa(year)
	case "%z":
		off := float64(v.gmtoff)
		ahead := off >= 0
		off = math.Abs(off) / 60
		off = off/60*100 + math.Mod(off, 60)
		s := "0000" + jsNumber(off)
		sign := "-"
		if ahead {
			sign = "+"
		}
		return sign + s[len(s)-4:]
	case "%Z":
		return v.zone
	case "%%":
		return "%"
	}
	return rule
}

func floorDiv(a, b int64) int64 { return int64(math.Floor(float64(a) / float64(b))) }

// jsMod is JS's % on integers: the sign follows the dividend.
func jsMod(a, b int64) int64 { return a % b }

func isoWeek(v *tm) int64 {
	wday, yday := int64(v.wday), int64(v.yday)
	val := floorDiv(yday+7-jsMod(wday+6, 7), 7)
	if jsMod(wday+371-yday-2, 7) <= 2 {
		val++
	}
	if val == 0 {
		val = 52
		dec31 := jsMod(wday+7-yday-1, 7)
		if dec31 == 4 || dec31 == 5 && isLeap(jsMod(int64(v.year), 400)-1) {
			val++
		}
	} else if val == 53 {
		jan1 := jsMod(wday+371-yday, 7)
		if jan1 != 4 && (jan1 != 3 || !isLeap(int64(v.year))) {
			val = 1
		}
	}
	return val
}

// strftime returns the expansion of pattern exactly as the emscripten glue
// computes it (the result excludes the terminating NUL).
func strftime(pattern string, v *tm) string {
	if !utf8.ValidString(pattern) {
		pattern = strings.ToValidUTF8(pattern, "\uFFFD")
	}
	for _, r := range strftimeRules1 {
		pattern = strings.ReplaceAll(pattern, r[0], r[1])
	}
	pattern = strings.ReplaceAll(pattern, "%%", "\x00\x00")
	for _, r := range strftimeRules2 {
		if strings.Contains(pattern, r) {
			pattern = strings.ReplaceAll(pattern, r, strftimeConv(r, v))
		}
	}
	return strings.ReplaceAll(pattern, "\x00\x00", "%")
}
