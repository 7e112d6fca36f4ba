package exchange

import "testing"

func TestRoundCount(t *testing.T) {
	for _, tc := range []struct{ n, threshold, r, want int64 }{
		{123, 10, 1, 123},
		{123, 10, 0, 123},
		{122, 10, 5, 120},
		{123, 10, 5, 125},
		{10, 10, 5, 10},
		{11, 11, 5, 15}, // 10 would read as withheld
		{12, 11, 5, 15},
		{18, 11, 5, 20},
		{1000, 10, 100, 1000},
		{1049, 10, 100, 1000},
	} {
		if got := roundCount(tc.n, tc.threshold, tc.r); got != tc.want {
			t.Errorf("roundCount(%d, %d, %d) = %d, want %d", tc.n, tc.threshold, tc.r, got, tc.want)
		}
	}
}
