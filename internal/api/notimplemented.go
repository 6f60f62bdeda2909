package api

// notYetImplemented lists the model's actions hoard does not implement yet. They
// answer 501 NotImplemented, never a fake success. Implementing one means moving it
// from here into operations().
var notYetImplemented = []string{
	"BatchApplyUpdateAction",
	"BatchStopUpdateAction",
	"CompleteMigration",
	"CreateGlobalReplicationGroup",
	"CreateUser",
	"CreateUserGroup",
	"DecreaseNodeGroupsInGlobalReplicationGroup",
	"DeleteGlobalReplicationGroup",
	"DeleteUser",
	"DeleteUserGroup",
	"DescribeGlobalReplicationGroups",
	"DescribeReservedCacheNodes",
	"DescribeReservedCacheNodesOfferings",
	"DescribeServiceUpdates",
	"DescribeUpdateActions",
	"DescribeUserGroups",
	"DescribeUsers",
	"DisassociateGlobalReplicationGroup",
	"FailoverGlobalReplicationGroup",
	"IncreaseNodeGroupsInGlobalReplicationGroup",
	"ModifyGlobalReplicationGroup",
	"ModifyUser",
	"ModifyUserGroup",
	"PurchaseReservedCacheNodesOffering",
	"RebalanceSlotsInGlobalReplicationGroup",
	"StartMigration",
	"TestMigration",
}
