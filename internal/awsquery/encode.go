package awsquery

import (
	"bytes"
	"reflect"
	"strconv"
	"time"
	"unicode/utf8"
)

// TimeFormat is how timestamps are written: UTC ISO 8601 with milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// FormatTime writes t the way AWS query responses do.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// EncodeFields appends the XML elements of every set field of the struct v (a
// struct or a pointer to one). Empty strings, nil pointers, nil slices and zero
// times are absent; non-pointer booleans and integers are always written.
func EncodeFields(b *bytes.Buffer, v any) {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return
		}
		rv = rv.Elem()
	}
	encodeStruct(b, rv)
}

func encodeStruct(b *bytes.Buffer, rv reflect.Value) {
	for _, f := range fieldsOf(rv.Type()) {
		encodeValue(b, f.wire, f.member, rv.Field(f.index), false)
	}
}

func encodeValue(b *bytes.Buffer, name, member string, fv reflect.Value, inList bool) {
	switch fv.Kind() {
	case reflect.String:
		// An empty string is absent, except as a list item, where dropping it would
		// change the list's length.
		if s := fv.String(); s != "" || inList {
			open(b, name)
			escape(b, s)
			closeTag(b, name)
		}
	case reflect.Bool:
		open(b, name)
		b.WriteString(strconv.FormatBool(fv.Bool()))
		closeTag(b, name)
	case reflect.Int32, reflect.Int64:
		open(b, name)
		b.WriteString(strconv.FormatInt(fv.Int(), 10))
		closeTag(b, name)
	case reflect.Float64:
		open(b, name)
		b.WriteString(strconv.FormatFloat(fv.Float(), 'f', -1, 64))
		closeTag(b, name)
	case reflect.Pointer:
		if !fv.IsNil() {
			encodeValue(b, name, member, fv.Elem(), inList)
		}
	case reflect.Slice:
		if fv.IsNil() {
			return
		}
		open(b, name)
		for i := 0; i < fv.Len(); i++ {
			encodeValue(b, member, "member", fv.Index(i), true)
		}
		closeTag(b, name)
	case reflect.Struct:
		if fv.Type() == timeType {
			if t := fv.Interface().(time.Time); !t.IsZero() {
				open(b, name)
				b.WriteString(FormatTime(t))
				closeTag(b, name)
			}
			return
		}
		open(b, name)
		encodeStruct(b, fv)
		closeTag(b, name)
	}
}

func open(b *bytes.Buffer, name string) {
	b.WriteByte('<')
	b.WriteString(name)
	b.WriteByte('>')
}

func closeTag(b *bytes.Buffer, name string) {
	b.WriteString("</")
	b.WriteString(name)
	b.WriteByte('>')
}

// escape writes s as XML character data; characters XML cannot carry become U+FFFD.
func escape(b *bytes.Buffer, s string) {
	if !needsEscape(s) {
		b.WriteString(s)
		return
	}
	last := 0
	for i := 0; i < len(s); {
		r, width := utf8.DecodeRuneInString(s[i:])
		var esc string
		switch {
		case r == '&':
			esc = "&amp;"
		case r == '<':
			esc = "&lt;"
		case r == '>':
			esc = "&gt;"
		case r == '"':
			esc = "&quot;"
		case r == '\'':
			esc = "&apos;"
		case r == '\r':
			esc = "&#xD;"
		case r == utf8.RuneError && width == 1, r < 0x20 && r != '\t' && r != '\n', r == 0xFFFE, r == 0xFFFF:
			esc = "\uFFFD"
		default:
			i += width
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(esc)
		i += width
		last = i
	}
	b.WriteString(s[last:])
}

// needsEscape reports whether s holds anything but printable ASCII that XML carries
// as is: the common case, checked a byte at a time.
func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 0x80, c < 0x20 && c != '\t' && c != '\n', c == '&', c == '<', c == '>', c == '"', c == '\'':
			return true
		}
	}
	return false
}

// Escape writes s as XML character data (exported for envelopes and error messages).
func Escape(b *bytes.Buffer, s string) { escape(b, s) }
