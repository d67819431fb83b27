package rpc

import (
	"context"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/ipam"
)

// CreateSubnet creates or updates a subnet.
func (s *ipamService) CreateSubnet(ctx context.Context, req *underlayv1.CreateSubnetRequest) (*underlayv1.Subnet, error) {
	sn := req.GetSubnet()
	if _, err := ipam.Validate(sn); err != nil {
		return nil, toStatus(invalidf("%v", err))
	}
	if _, err := s.applyAndWait(ctx, &underlayv1.Command{Cmd: &underlayv1.Command_PutSubnet{PutSubnet: &underlayv1.PutSubnet{Subnet: sn}}}); err != nil {
		return nil, toStatus(err)
	}
	out, err := s.store.Subnet(sn.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("subnet saved", "subnet", sn.GetName(), "cidr", sn.GetCidr(), "by", actor(ctx))
	return out, nil
}

// ListSubnets lists subnets.
func (s *ipamService) ListSubnets(ctx context.Context, req *underlayv1.ListSubnetsRequest) (*underlayv1.ListSubnetsResponse, error) {
	if err := s.read(ctx, req.GetRead()); err != nil {
		return nil, toStatus(err)
	}
	return &underlayv1.ListSubnetsResponse{Subnets: s.store.Subnets()}, nil
}

// DeleteSubnet deletes a subnet with its leases and reservations.
func (s *ipamService) DeleteSubnet(ctx context.Context, req *underlayv1.DeleteSubnetRequest) (*underlayv1.DeleteSubnetResponse, error) {
	if _, err := s.apply(ctx, &underlayv1.Command{Cmd: &underlayv1.Command_DeleteSubnet{DeleteSubnet: &underlayv1.DeleteSubnet{Name: req.GetName()}}}); err != nil {
		return nil, toStatus(err)
	}
	return &underlayv1.DeleteSubnetResponse{}, nil
}

// ListLeases lists leases; expired ones only with all.
func (s *ipamService) ListLeases(ctx context.Context, req *underlayv1.ListLeasesRequest) (*underlayv1.ListLeasesResponse, error) {
	if err := s.read(ctx, req.GetRead()); err != nil {
		return nil, toStatus(err)
	}
	now := s.now()
	var out []*underlayv1.Lease
	for _, l := range s.store.Leases(req.GetSubnet()) {
		if req.GetAll() || l.GetExpires().AsTime().After(now) {
			out = append(out, l)
		}
	}
	return &underlayv1.ListLeasesResponse{Leases: out}, nil
}

// CreateReservation pins an address to a MAC.
func (s *ipamService) CreateReservation(ctx context.Context, req *underlayv1.CreateReservationRequest) (*underlayv1.Reservation, error) {
	r := req.GetReservation()
	mac, err := ipam.NormalizeMAC(r.GetMac())
	if err != nil {
		return nil, toStatus(invalidf("%v", err))
	}
	if _, err := s.applyAndWait(ctx, &underlayv1.Command{Cmd: &underlayv1.Command_PutReservation{PutReservation: &underlayv1.PutReservation{Reservation: r}}}); err != nil {
		return nil, toStatus(err)
	}
	for _, x := range s.store.Reservations(r.GetSubnet()) {
		if x.GetMac() == mac {
			return x, nil
		}
	}
	return nil, toStatus(notFoundf("reservation %s/%s vanished", r.GetSubnet(), mac))
}

// ListReservations lists reservations.
func (s *ipamService) ListReservations(ctx context.Context, req *underlayv1.ListReservationsRequest) (*underlayv1.ListReservationsResponse, error) {
	if err := s.read(ctx, req.GetRead()); err != nil {
		return nil, toStatus(err)
	}
	return &underlayv1.ListReservationsResponse{Reservations: s.store.Reservations(req.GetSubnet())}, nil
}

// DeleteReservation removes a reservation.
func (s *ipamService) DeleteReservation(ctx context.Context, req *underlayv1.DeleteReservationRequest) (*underlayv1.DeleteReservationResponse, error) {
	if _, err := s.apply(ctx, &underlayv1.Command{Cmd: &underlayv1.Command_DeleteReservation{DeleteReservation: &underlayv1.DeleteReservation{
		Subnet: req.GetSubnet(), Mac: req.GetMac(),
	}}}); err != nil {
		return nil, toStatus(err)
	}
	return &underlayv1.DeleteReservationResponse{}, nil
}
