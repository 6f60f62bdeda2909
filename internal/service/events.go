package service

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/store"
)

const tableEvents = "events"

// Event source types, as the model's SourceType enum spells them.
const (
	EventsCacheCluster        = "cache-cluster"
	EventsCacheParameterGroup = "cache-parameter-group"
	EventsCacheSecurityGroup  = "cache-security-group"
	EventsCacheSubnetGroup    = "cache-subnet-group"
	EventsReplicationGroup    = "replication-group"
	EventsServerlessCache     = "serverless-cache"
	EventsServerlessSnapshot  = "serverless-cache-snapshot"
	EventsUser                = "user"
	EventsUserGroup           = "user-group"
)

var sourceTypes = []string{EventsCacheCluster, EventsCacheParameterGroup, EventsCacheSecurityGroup, EventsCacheSubnetGroup,
	EventsReplicationGroup, EventsServerlessCache, EventsServerlessSnapshot, EventsUser, EventsUserGroup}

// EventRetention is how long events are kept: AWS documents 14 days.
const EventRetention = 14 * 24 * time.Hour

type event struct {
	Date       time.Time `json:"date"`
	SourceType string    `json:"sourceType"`
	SourceID   string    `json:"sourceId"`
	Message    string    `json:"message"`
}

var eventSeq atomic.Uint64

// recordEvent adds an event to the caller's feed within tx. Keys sort by time, so
// the feed reads in order without sorting.
func (s *Service) recordEvent(tx *store.Tx, c Caller, sourceType, sourceID, format string, args ...any) error {
	e := event{Date: s.now(), SourceType: sourceType, SourceID: sourceID, Message: fmt.Sprintf(format, args...)}
	key := fmt.Sprintf("%s%020d/%010d", c.scope(), e.Date.UnixNano(), eventSeq.Add(1)%1e10)
	s.log.Debug("event", "source_type", sourceType, "source", sourceID, "message", e.Message)
	return tx.Put(tableEvents, key, e)
}

// pruneEvents deletes events older than EventRetention, in every account and region.
func (s *Service) pruneEvents() error {
	cutoff := s.now().Add(-EventRetention)
	return s.store.Update(func(tx *store.Tx) error {
		var old []string
		err := tx.Scan(tableEvents, "", func(key string, raw []byte) error {
			var e event
			if err := json.Unmarshal(raw, &e); err == nil && e.Date.Before(cutoff) {
				old = append(old, key)
			}
			return nil
		})
		for _, k := range old {
			if err := tx.Delete(tableEvents, k); err != nil {
				return err
			}
		}
		return err
	})
}

// DescribeEvents returns the caller's events, newest first, within a time window:
// StartTime/EndTime, or the last Duration minutes (default 60), at most 14 days back.
func (s *Service) DescribeEvents(ctx context.Context, in *ecapi.DescribeEventsMessage) (*ecapi.EventsMessage, error) {
	c := CallerOf(ctx)
	if in.SourceType != "" && !slices.Contains(sourceTypes, in.SourceType) {
		return nil, ecapi.InvalidParameterValueException.Errorf("Invalid SourceType %q.", in.SourceType)
	}
	if in.SourceIdentifier != "" && in.SourceType == "" {
		return nil, ecapi.InvalidParameterCombinationException.Errorf("SourceType must be given with SourceIdentifier.")
	}
	now := s.now()
	end := now
	if !in.EndTime.IsZero() {
		end = in.EndTime
	}
	start := end.Add(-time.Hour)
	switch {
	case in.Duration != nil && !in.StartTime.IsZero():
		return nil, ecapi.InvalidParameterCombinationException.Errorf("Duration cannot be combined with StartTime.")
	case in.Duration != nil:
		if *in.Duration < 1 || time.Duration(*in.Duration)*time.Minute > EventRetention {
			return nil, ecapi.InvalidParameterValueException.Errorf("Duration must be between 1 and %d minutes.", int(EventRetention/time.Minute))
		}
		start = end.Add(-time.Duration(*in.Duration) * time.Minute)
	case !in.StartTime.IsZero():
		start = in.StartTime
	}
	if start.After(end) {
		return nil, ecapi.InvalidParameterCombinationException.Errorf("StartTime must be before EndTime.")
	}
	var events []event
	var keys []string
	err := s.store.View(func(tx *store.Tx) error {
		return tx.Scan(tableEvents, c.scope(), func(key string, raw []byte) error {
			var e event
			if err := json.Unmarshal(raw, &e); err != nil {
				return err
			}
			if e.Date.Before(start) || e.Date.After(end) ||
				in.SourceType != "" && e.SourceType != in.SourceType ||
				in.SourceIdentifier != "" && e.SourceID != in.SourceIdentifier {
				return nil
			}
			events, keys = append(events, e), append(keys, key)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(events)
	slices.Reverse(keys)
	first, last, next, err := pageByKey(in.MaxRecords, in.Marker, keys)
	if err != nil {
		return nil, err
	}
	out := &ecapi.EventsMessage{Marker: next, Events: []ecapi.Event{}}
	for _, e := range events[first:last] {
		out.Events = append(out.Events, ecapi.Event{SourceIdentifier: e.SourceID, SourceType: e.SourceType, Message: e.Message, Date: e.Date})
	}
	return out, nil
}
